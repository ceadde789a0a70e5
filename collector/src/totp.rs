//! Two-factor login: time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps,
//! six digits, as every authenticator app reads an `otpauth://` URI) and single-use recovery
//! codes. Secrets are 160 random bits, written in base32 (RFC 4648, no padding).

use ring::hmac;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps before and after the current one a code is still taken from (a clock off by up to
/// 30 seconds, or a code typed as it changed).
pub const SKEW_STEPS: i64 = 1;
/// Recovery codes made at once.
pub const RECOVERY_CODES: usize = 10;
/// The issuer an authenticator app shows beside the account.
pub const ISSUER: &str = "Footfall";

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// RFC 4648 base32 (case, spaces and padding ignored); `None` for any other character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = ALPHABET
            .iter()
            .position(|a| *a as char == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// A new secret, in base32.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::fill(&mut bytes);
    base32_encode(&bytes)
}

/// The HOTP value (RFC 4226) of `secret` at `counter`, `digits` long.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let value = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    value % 10u32.pow(digits)
}

/// The code of `secret` (base32) for the step of `unix_secs`, zero-padded.
pub fn code_at(secret: &str, unix_secs: i64) -> Option<String> {
    let key = base32_decode(secret)?;
    let step = u64::try_from(unix_secs.div_euclid(STEP_SECS)).ok()?;
    Some(format!(
        "{:0width$}",
        hotp(&key, step, DIGITS),
        width = DIGITS as usize
    ))
}

/// The step a `code` matches for `secret` at `unix_secs` (within [`SKEW_STEPS`]), if it
/// matches one after `last_step` (a code is taken once).
pub fn verify(secret: &str, code: &str, unix_secs: i64, last_step: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix_secs.div_euclid(STEP_SECS);
    (now - SKEW_STEPS..=now + SKEW_STEPS)
        .filter(|step| *step > last_step)
        .find(|step| {
            code_at(secret, step * STEP_SECS)
                .is_some_and(|c| crate::accounts::constant_time_eq(&c, &code))
        })
}

/// The `otpauth://` URI an authenticator app reads (from the QR code, or typed).
pub fn uri(secret: &str, account: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(ISSUER),
        enc(account),
        enc(ISSUER)
    )
}

/// New recovery codes, as shown once: `xxxxx-xxxxx`, 50 random bits each.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 7];
            rand::fill(&mut bytes);
            let s = base32_encode(&bytes).to_ascii_lowercase();
            format!("{}-{}", &s[..5], &s[5..10])
        })
        .collect()
}

/// How a recovery code is stored.
pub fn recovery_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    blake3::hash(format!("footfall-recovery:{normal}").as_bytes())
        .to_hex()
        .to_string()
}

/// How a set of recovery codes is stored.
pub fn recovery_hashes(codes: &[String]) -> Vec<String> {
    codes.iter().map(|c| recovery_hash(c)).collect()
}

/// A QR code of `text` as an SVG image.
pub fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trips_and_reads_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), coded);
            assert_eq!(base32_decode(coded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("mzxw 6ytb oi==").unwrap(), b"foobar");
        assert!(base32_decode("MZXW1").is_none());
        let s = new_secret();
        assert_eq!(base32_decode(&s).unwrap().len(), 20);
    }

    #[test]
    fn codes_match_rfc_6238_and_4226() {
        // RFC 4226 appendix D: the secret "12345678901234567890".
        let key = b"12345678901234567890";
        let hotp6: Vec<u32> = (0..3).map(|c| hotp(key, c, 6)).collect();
        assert_eq!(hotp6, [755224, 287082, 359152]);
        // RFC 6238 appendix B, SHA1, eight digits.
        for (t, want) in [
            (59, 94287082),
            (1111111109, 7081804),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(hotp(key, t / 30, 8), want, "{t}");
        }
        let secret = base32_encode(key);
        assert_eq!(code_at(&secret, 59).unwrap(), "287082");
        assert_eq!(code_at(&secret, 1111111109).unwrap(), "081804");
    }

    #[test]
    fn a_code_is_taken_once_and_only_near_its_time() {
        let secret = base32_encode(b"12345678901234567890");
        let now = 1_111_111_109;
        let code = code_at(&secret, now).unwrap();
        let step = verify(&secret, &code, now, 0).unwrap();
        assert_eq!(step, now / 30);
        assert_eq!(verify(&secret, &code, now, step), None, "replayed");
        assert!(verify(&secret, &code, now + 30, 0).is_some(), "a step late");
        assert!(
            verify(&secret, &code, now + 90, 0).is_none(),
            "three steps late"
        );
        assert!(verify(&secret, "12345", now, 0).is_none());
        assert!(verify(&secret, "abcdef", now, 0).is_none());
        assert_eq!(
            verify(&secret, &format!("{} {}", &code[..3], &code[3..]), now, 0),
            Some(step)
        );
    }

    #[test]
    fn uris_and_recovery_codes() {
        let u = uri("JBSWY3DPEHPK3PXP", "ann@example.org");
        assert_eq!(
            u,
            "otpauth://totp/Footfall:ann%40example%2Eorg?secret=JBSWY3DPEHPK3PXP&issuer=Footfall&algorithm=SHA1&digits=6&period=30"
        );
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-')
        );
        assert_eq!(
            recovery_hash(&codes[0]),
            recovery_hash(&codes[0].to_uppercase().replace('-', " "))
        );
        assert!(qr_svg(&u).unwrap().starts_with("<?xml"));
    }
}
