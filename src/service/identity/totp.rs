//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s, ±1 step) with secrets sealed at rest
//! by XChaCha20-Poly1305, bound to their user id.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox};
use totp_rs::{Algorithm, Builder, Secret, Totp};

pub const ISSUER: &str = "Coffer";
const NONCE_LEN: usize = 24;

pub struct TotpSealer {
    cipher: XChaCha20Poly1305,
}

impl TotpSealer {
    pub fn new(key: &SecretBox<[u8; 32]>) -> Self {
        Self { cipher: XChaCha20Poly1305::new(&Key::from(*key.expose_secret())) }
    }

    pub fn seal(&self, user_id: i64, secret: &[u8]) -> String {
        let nonce = super::random_bytes::<NONCE_LEN>();
        let aad = user_id.to_be_bytes();
        let sealed = self.cipher.encrypt(&XNonce::from(nonce), Payload { msg: secret, aad: &aad }).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    /// The secret, if `sealed` was sealed by this key for this user.
    pub fn open(&self, user_id: i64, sealed: &str) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let aad = user_id.to_be_bytes();
        self.cipher.decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: &aad }).ok()
    }
}

/// The authenticator-app view of a secret (otpauth URL, QR code).
pub fn authenticator(secret: &[u8], account: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(Secret::from(secret.to_vec()))
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .ok()
}

/// The time step `code` belongs to, within ±1 step of `unix_seconds`.
pub fn verify_code(secret: &[u8], code: &str, unix_seconds: u64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = authenticator(secret, "verify")?;
    totp.check(code, unix_seconds).and_then(|step| i64::try_from(step).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_user() {
        let sealer = TotpSealer::new(&SecretBox::new(Box::new([9u8; 32])));
        let sealed = sealer.seal(7, b"twenty byte secret!!");
        assert_eq!(sealer.open(7, &sealed).as_deref(), Some(&b"twenty byte secret!!"[..]));
        assert_eq!(sealer.open(8, &sealed), None, "bound to the user id");
        let other = TotpSealer::new(&SecretBox::new(Box::new([1u8; 32])));
        assert_eq!(other.open(7, &sealed), None);
        assert_ne!(sealed, sealer.seal(7, b"twenty byte secret!!"), "fresh nonce each time");
    }

    #[test]
    fn codes_match_rfc6238_within_one_step() {
        // RFC 6238 test vector: SHA-1, secret "12345678901234567890", T = 59 s → 94287082 (8 digits); 6 digits: 287082.
        let secret = b"12345678901234567890";
        assert_eq!(verify_code(secret, "287082", 59), Some(1));
        assert_eq!(verify_code(secret, "287082", 59 + 30), Some(1), "previous step accepted");
        assert_eq!(verify_code(secret, "287082", 59 + 90), None, "two steps late");
        assert_eq!(verify_code(secret, "28708", 59), None);
        assert_eq!(verify_code(secret, "abcdef", 59), None);
    }
}
