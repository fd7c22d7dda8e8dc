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
