# Footfall: build in the Rust image, run in a slim Debian one as an unprivileged user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin footfall

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/footfall footfall && mkdir -p /var/lib/footfall \
    && chown footfall /var/lib/footfall
COPY --from=build /src/target/release/footfall /usr/local/bin/footfall
USER footfall
WORKDIR /var/lib/footfall
ENV FOOTFALL_LISTEN=0.0.0.0:8000
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["footfall"]
CMD ["serve"]
