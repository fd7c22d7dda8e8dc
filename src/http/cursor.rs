//! Opaque pagination cursors: base64url of the last item's sort key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::service::ServiceError;

/// Items a page holds when the client does not say.
pub const DEFAULT_PAGE: usize = 100;

/// `?cursor=&limit=` of a paged list.
#[derive(Deserialize)]
pub struct Page {
    cursor: Option<String>,
    limit: Option<usize>,
}

impl Page {
    /// The sort key to resume after (the decoded cursor), if any.
    pub fn after(&self) -> Result<Option<String>, ServiceError> {
        self.cursor.as_deref().map(decode).transpose()
    }

    /// The requested page size (the service clamps it to its maximum).
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_PAGE)
    }
}

pub fn encode(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

pub fn decode(cursor: &str) -> Result<String, ServiceError> {
    let invalid = || ServiceError::bad_request("invalid-cursor", "the cursor is not one this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    // No sort key this server issues holds a control character (keys, names and ids cannot).
    String::from_utf8(bytes).ok().filter(|text| !text.chars().any(char::is_control)).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_garbage() {
        assert_eq!(decode(&encode("photos/é")).ok().as_deref(), Some("photos/é"));
        assert!(decode("!!!").is_err());
        assert!(decode(&encode("a\0b")).is_err(), "no issued cursor holds a control character");
    }
}
