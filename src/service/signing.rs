//! Gateway-signed URLs: HMAC-SHA256 over method, path, expiry, signer, the
//! signer's token generation and the API key used. Keys rotate: the previous
//! key keeps verifying until its grace period ends.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

pub const EXPIRES: &str = "X-Coffer-Expires";
pub const SIGNER: &str = "X-Coffer-Signer";
pub const API_KEY: &str = "X-Coffer-Key";
pub const KEY_ID: &str = "X-Coffer-KeyId";
pub const SIGNATURE: &str = "X-Coffer-Signature";
const NO_API_KEY: &str = "-";

struct SigningKey {
    id: String,
    secret: SecretBox<[u8; 32]>,
}

impl SigningKey {
    fn new(secret: SecretBox<[u8; 32]>) -> Self {
        let id = hex::encode(&Sha256::digest(secret.expose_secret())[..4]);
        Self { id, secret }
    }

    fn mac(&self, canonical: &str) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.secret.expose_secret()).unwrap_or_else(|_| {
            // HMAC accepts keys of any length; a 32-byte key never fails.
            unreachable!("HMAC-SHA256 takes any key length")
        });
        mac.update(canonical.as_bytes());
        mac
    }
}

/// A query that carries some signature fields but not a well-formed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signed URL was altered")]
pub struct Tampered;

/// The signature fields a URL carries in its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParams {
    pub expires: i64,
    pub signer: i64,
    pub api_key: Option<String>,
    pub key_id: String,
    pub signature: String,
}

impl SignedParams {
    pub fn to_query(&self) -> String {
        format!(
            "{EXPIRES}={}&{SIGNER}={}&{API_KEY}={}&{KEY_ID}={}&{SIGNATURE}={}",
            self.expires,
            self.signer,
            self.api_key.as_deref().unwrap_or(NO_API_KEY),
            self.key_id,
            self.signature
        )
    }

    /// `Ok(None)` when the query carries no signature fields at all; `Err`
    /// when it carries some but not a well-formed set (tampered).
    pub fn from_query(query: &str) -> Result<Option<Self>, Tampered> {
        let pairs: Vec<(&str, &str)> = query.split('&').filter_map(|pair| pair.split_once('=')).collect();
        // `get`, not slicing: byte 9 may fall inside a multi-byte character (a panic found by tests/fuzz.rs).
        let lowered_prefix = |name: &str| name.get(..9).is_some_and(|prefix| prefix.eq_ignore_ascii_case("X-Coffer-"));
        if !pairs.iter().any(|(name, _)| lowered_prefix(name)) {
            return Ok(None);
        }
        let field = |name: &str| -> Result<&str, Tampered> {
            let mut values = pairs.iter().filter(|(n, _)| *n == name).map(|(_, v)| *v);
            match (values.next(), values.next()) {
                (Some(value), None) => Ok(value),
                _ => Err(Tampered),
            }
        };
        let number = |text: &str| -> Result<i64, Tampered> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Tampered);
            }
            text.parse().map_err(|_| Tampered)
        };
        let api_key = field(API_KEY)?;
        let signature = field(SIGNATURE)?;
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(Tampered);
        }
        Ok(Some(Self {
            expires: number(field(EXPIRES)?)?,
            signer: number(field(SIGNER)?)?,
            api_key: (api_key != NO_API_KEY).then(|| api_key.to_owned()),
            key_id: field(KEY_ID)?.to_owned(),
            signature: signature.to_owned(),
        }))
    }
}

/// What a signature binds. The path is the raw, percent-encoded request path:
/// any change to any byte of it changes the signature.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub expires: i64,
    pub signer: i64,
    pub generation: i64,
    pub api_key: Option<&'a str>,
}

impl Claim<'_> {
    fn canonical(&self) -> String {
        format!(
            "coffer-signed-url-v1\n{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.raw_path,
            self.expires,
            self.signer,
            self.generation,
            self.api_key.unwrap_or(NO_API_KEY)
        )
    }
}

pub struct UrlSigner {
    current: SigningKey,
    previous: Option<(SigningKey, DateTime<Utc>)>,
}

impl UrlSigner {
    pub fn new(current: SecretBox<[u8; 32]>, previous: Option<(SecretBox<[u8; 32]>, DateTime<Utc>)>) -> Self {
        Self { current: SigningKey::new(current), previous: previous.map(|(key, until)| (SigningKey::new(key), until)) }
    }

    pub fn sign(&self, claim: &Claim<'_>) -> SignedParams {
        let signature = hex::encode(self.current.mac(&claim.canonical()).finalize().into_bytes());
        SignedParams {
            expires: claim.expires,
            signer: claim.signer,
            api_key: claim.api_key.map(str::to_owned),
            key_id: self.current.id.clone(),
            signature,
        }
    }

    /// Constant-time check against the current key, or the previous one during its grace period.
    pub fn verify(&self, claim: &Claim<'_>, signature: &str, key_id: &str, now: DateTime<Utc>) -> bool {
        let Ok(signature) = hex::decode(signature) else {
            return false;
        };
        let key = if key_id == self.current.id {
            &self.current
        } else {
            match &self.previous {
                Some((key, until)) if key.id == key_id && now < *until => key,
                _ => return false,
            }
        };
        key.mac(&claim.canonical()).verify_slice(&signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretBox<[u8; 32]> {
        SecretBox::new(Box::new([byte; 32]))
    }

    fn claim(path: &str) -> Claim<'_> {
        Claim { method: "GET", raw_path: path, expires: 2_000_000_000, signer: 7, generation: 0, api_key: None }
    }

    #[test]
    fn signatures_bind_every_field() {
        let signer = UrlSigner::new(key(1), None);
        let now = Utc::now();
        let signed = signer.sign(&claim("/a/b"));
        assert!(signer.verify(&claim("/a/b"), &signed.signature, &signed.key_id, now));
        assert!(!signer.verify(&claim("/a/c"), &signed.signature, &signed.key_id, now));
        for changed in [
            Claim { method: "PUT", ..claim("/a/b") },
            Claim { expires: 2_000_000_001, ..claim("/a/b") },
            Claim { signer: 8, ..claim("/a/b") },
            Claim { generation: 1, ..claim("/a/b") },
            Claim { api_key: Some("k"), ..claim("/a/b") },
        ] {
            assert!(!signer.verify(&changed, &signed.signature, &signed.key_id, now));
        }
    }

    #[test]
    fn the_previous_key_works_only_during_its_grace_period() {
        let now = Utc::now();
        let old = UrlSigner::new(key(1), None);
        let signed = old.sign(&claim("/x"));
        let rotated = UrlSigner::new(key(2), Some((key(1), now + chrono::Duration::hours(1))));
        assert!(rotated.verify(&claim("/x"), &signed.signature, &signed.key_id, now));
        assert!(!rotated.verify(&claim("/x"), &signed.signature, &signed.key_id, now + chrono::Duration::hours(2)));
        let fresh = rotated.sign(&claim("/x"));
        assert!(rotated.verify(&claim("/x"), &fresh.signature, &fresh.key_id, now + chrono::Duration::hours(2)));
    }

    #[test]
    fn query_parsing_is_strict() {
        let signed = UrlSigner::new(key(1), None).sign(&claim("/x"));
        let query = signed.to_query();
        assert_eq!(SignedParams::from_query(&query), Ok(Some(signed.clone())));
        assert_eq!(SignedParams::from_query("download=1"), Ok(None));
        assert_eq!(SignedParams::from_query(&format!("{query}&{EXPIRES}=1")), Err(Tampered), "duplicates");
        assert_eq!(SignedParams::from_query(&query.replace("X-Coffer-Expires=", "X-Coffer-Expires=+")), Err(Tampered));
        assert_eq!(SignedParams::from_query(&query.replace(SIGNATURE, "X-Coffer-Signatur")), Err(Tampered));
        assert_eq!(SignedParams::from_query(&query.to_uppercase()), Err(Tampered));
    }
}
