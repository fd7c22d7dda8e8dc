//! Identity building blocks: password hashing, tokens, TOTP. The use cases
//! that combine them live in `service::auth`, `service::account`, `service::users`.

mod passwords;
mod tokens;
mod totp;

pub use passwords::PasswordHasher;
pub use tokens::{AUDIENCE, AccessClaims, ISSUER, JwtSigner, digest, random_bytes, random_token};
pub use totp::{TotpSealer, authenticator, verify_code};

use crate::config::Config;
use crate::keys::MasterKey;

/// The identity components, built once at start from configuration and the master key.
pub struct Identity {
    pub passwords: PasswordHasher,
    pub jwt: JwtSigner,
    pub totp: TotpSealer,
}

impl Identity {
    pub fn new(config: &Config, master: &MasterKey) -> Self {
        Self {
            passwords: PasswordHasher::new(config),
            jwt: JwtSigner::new(&master.derive("jwt hs256")),
            totp: TotpSealer::new(&master.derive("totp secret sealing")),
        }
    }
}
