//! Opaque pagination cursors: base64url of the last item's sort key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::service::ServiceError;

pub fn encode(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

pub fn decode(cursor: &str) -> Result<String, ServiceError> {
    let invalid = || ServiceError::bad_request("invalid-cursor", "the cursor is not one this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_garbage() {
        assert_eq!(decode(&encode("photos/é")).ok().as_deref(), Some("photos/é"));
        assert!(decode("!!!").is_err());
    }
}
