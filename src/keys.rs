//! Key material: the master key (configured, or generated once into the data
//! dir) and the purpose-bound keys derived from it with HKDF-SHA256.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

use crate::config::Config;

pub const MASTER_KEY_FILE: &str = "master.key";

/// Decodes 32 bytes written as hex or base64 (standard or URL-safe).
pub fn decode_master_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        STANDARD.decode(text).or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))).ok()?
    };
    bytes.try_into().ok()
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or create the master key file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the master key file {0} does not hold 32 base64 or hex bytes")]
    Malformed(String),
    #[error(
        "no master key: set COFFER_MASTER_KEY to the servers' key (this command does not create one, \
         since what it writes must verify under the servers' key)"
    )]
    Missing,
}

/// The root secret. Never logged, never serialized.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// The configured key, else `<data_dir>/master.key`, created (mode 0600) if absent.
    pub fn load(config: &Config) -> Result<Self, KeyError> {
        match Self::load_existing(config)? {
            Some(key) => Ok(key),
            None => Self::create_file(&config.data_dir.join(MASTER_KEY_FILE)),
        }
    }

    /// The configured key, else `<data_dir>/master.key` if it exists; nothing is created.
    pub fn load_existing(config: &Config) -> Result<Option<Self>, KeyError> {
        if let Some(configured) = &config.master_key
            && let Some(bytes) = decode_master_key(configured.expose_secret())
        {
            return Ok(Some(Self::from_bytes(bytes)));
        }
        let path = config.data_dir.join(MASTER_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => decode_master_key(&text)
                .map(|bytes| Some(Self::from_bytes(bytes)))
                .ok_or_else(|| KeyError::Malformed(path.display().to_string())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::File { path: path.display().to_string(), source }),
        }
    }

    /// A key that lives only as long as this process (never written anywhere).
    pub fn throwaway() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::File {
            path: "(random source)".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Self::from_bytes(bytes))
    }

    fn create_file(path: &Path) -> Result<Self, KeyError> {
        let file_error = |source| KeyError::File { path: path.display().to_string(), source };
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| file_error(std::io::Error::other(e.to_string())))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(file_error)?;
        }
        write_private(path, &STANDARD.encode(bytes)).map_err(file_error)?;
        tracing::warn!(path = %path.display(), "generated a new master key; replicas must share one: set COFFER_MASTER_KEY");
        Ok(Self::from_bytes(bytes))
    }

    /// A 32-byte key for one purpose; different purposes give unrelated keys.
    pub fn derive(&self, purpose: &str) -> SecretBox<[u8; 32]> {
        let hkdf = Hkdf::<Sha256>::new(Some(b"coffer key derivation v1"), self.0.expose_secret());
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so this cannot fail.
        let _ = hkdf.expand(purpose.as_bytes(), &mut out);
        SecretBox::new(Box::new(out))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_hex_and_base64() {
        let bytes = [7u8; 32];
        assert_eq!(decode_master_key(&hex::encode(bytes)), Some(bytes));
        assert_eq!(decode_master_key(&STANDARD.encode(bytes)), Some(bytes));
        assert_eq!(decode_master_key(&URL_SAFE_NO_PAD.encode(bytes)), Some(bytes));
        assert_eq!(decode_master_key("short"), None);
        assert_eq!(decode_master_key(&STANDARD.encode([1u8; 16])), None);
    }

    #[test]
    fn generated_key_is_persisted_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        let first = MasterKey::load(&config).expect("create");
        let second = MasterKey::load(&config).expect("reload");
        assert_eq!(first.derive("x").expose_secret(), second.derive("x").expose_secret());
        assert_ne!(first.derive("x").expose_secret(), first.derive("y").expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE)).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
