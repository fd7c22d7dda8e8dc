//! Access tokens (HS256 JWTs, algorithm pinned) and opaque random tokens stored as digests.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::Role;

pub const ISSUER: &str = "coffer";
pub const AUDIENCE: &str = "coffer-api";

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buffer = [0u8; N];
    // Without a working OS RNG no secret can be made safely; getrandom only
    // fails on platforms that have none, so this is a start-up-time failure.
    #[allow(clippy::panic, reason = "no safe way to continue without randomness")]
    if getrandom::fill(&mut buffer).is_err() {
        panic!("the operating system's random number generator failed");
    }
    buffer
}

/// `prefix` + 32 random bytes (256 bits), base64url.
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// SHA-256 hex of a high-entropy token: what the database stores instead of it.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    pub name: String,
    pub role: Role,
    /// The user's token generation when issued; a bump revokes the token.
    #[serde(rename = "gen")]
    pub generation: i64,
    /// Whether the login passed a second factor.
    pub mfa: bool,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub aud: String,
    pub iss: String,
}

/// Tokens whose signature and claims have been checked, kept so that a
/// client's next requests skip the decoding, JSON parsing and HMAC (an eighth
/// of a warm read's CPU). Keyed by the whole token, so only a byte-identical
/// token ever hits; expiry is still checked on every use, and revocation
/// (generation, disabled accounts) is checked by the caller as before.
const VERIFIED_TOKENS: usize = 10_000;

pub struct JwtSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Bounded by count only: expiry is checked on every use.
    verified: quick_cache::sync::Cache<Box<str>, Arc<AccessClaims>>,
}

impl JwtSigner {
    pub fn new(key: &SecretBox<[u8; 32]>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        // Expiry is checked against Coffer's clock (see `verify`), not the library's.
        validation.validate_exp = false;
        Self {
            encoding: EncodingKey::from_secret(key.expose_secret()),
            decoding: DecodingKey::from_secret(key.expose_secret()),
            validation,
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS),
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).unwrap_or_default()
    }

    /// The claims of a well-signed, unexpired token; `None` for anything else
    /// (other algorithms, `none`, wrong key, wrong audience, expired).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<Arc<AccessClaims>> {
        let claims = match self.verified.get(token) {
            Some(claims) => claims,
            None => {
                let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).ok()?;
                let claims = Arc::new(data.claims);
                self.verified.insert(token.into(), Arc::clone(&claims));
                claims
            }
        };
        (claims.exp > now.timestamp()).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            sub: "1".into(),
            name: "alice".into(),
            role: Role::User,
            generation: 0,
            mfa: false,
            iat: 0,
            exp,
            jti: "j".into(),
            aud: AUDIENCE.into(),
            iss: ISSUER.into(),
        }
    }

    #[test]
    fn tokens_verify_only_with_the_key_and_before_expiry() {
        let signer = JwtSigner::new(&SecretBox::new(Box::new([1u8; 32])));
        let other = JwtSigner::new(&SecretBox::new(Box::new([2u8; 32])));
        let now = Utc::now();
        let token = signer.sign(&claims(now.timestamp() + 60));
        assert!(signer.verify(&token, now).is_some());
        assert!(other.verify(&token, now).is_none(), "wrong key");
        assert!(signer.verify(&token, now + chrono::Duration::seconds(61)).is_none(), "expired");
        let mut foreign = claims(now.timestamp() + 60);
        foreign.aud = "elsewhere".into();
        assert!(signer.verify(&signer.sign(&foreign), now).is_none(), "wrong audience");
    }

    #[test]
    fn a_remembered_token_vouches_for_no_other() {
        let signer = JwtSigner::new(&SecretBox::new(Box::new([1u8; 32])));
        let now = Utc::now();
        let token = signer.sign(&claims(now.timestamp() + 60));
        assert!(signer.verify(&token, now).is_some());
        assert!(signer.verify(&token, now).is_some(), "the remembered verification");
        let (signed, signature) = token.rsplit_once('.').expect("three parts");
        let mut forged = claims(now.timestamp() + 60);
        forged.role = Role::Admin;
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap_or_default());
        let header = signed.split('.').next().unwrap_or_default();
        assert!(signer.verify(&format!("{header}.{body}.{signature}"), now).is_none(), "claims swapped");
        let flipped = if signature.as_bytes()[10] == b'A' { "B" } else { "A" };
        let tampered = format!("{signed}.{}{flipped}{}", &signature[..10], &signature[11..]);
        assert!(signer.verify(&tampered, now).is_none(), "signature changed");
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        let signer = JwtSigner::new(&SecretBox::new(Box::new([1u8; 32])));
        let now = Utc::now();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(now.timestamp() + 60)).unwrap_or_default());
        assert!(signer.verify(&format!("{header}.{body}."), now).is_none());
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token("cfk_");
        assert!(a.starts_with("cfk_") && a.len() == 4 + 43);
        assert_ne!(a, random_token("cfk_"));
        assert_eq!(digest("x").len(), 64);
    }
}
