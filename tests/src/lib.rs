//! End-to-end test support for Footfall.
