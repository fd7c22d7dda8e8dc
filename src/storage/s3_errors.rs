//! Classifies aws-sdk errors into `StorageError`s: absent, unreachable, or a backend fault.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::StorageError;

pub(super) fn classify<E>(error: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let described = || anyhow::anyhow!("{}", DisplayErrorContext(&error));
    match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => StorageError::Unavailable(described()),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            match (service.raw().status().as_u16(), code) {
                (404, _) | (_, "NoSuchKey" | "NoSuchUpload" | "NotFound") => StorageError::NotFound,
                (416, _) | (_, "InvalidRange") => StorageError::InvalidRange,
                (401 | 403 | 500..=599, _) => StorageError::Unavailable(described()),
                _ => StorageError::Backend(described()),
            }
        }
        _ => StorageError::Backend(described()),
    }
}

/// As `classify`, for a request whose body streams from the client as it
/// arrives: S3 giving up on a body that stopped arriving (`RequestTimeout`,
/// `IncompleteBody`; AWS waits ~20 s) is the client's fault. For a body Coffer
/// holds, the same codes mean the link to S3 stalls: a backend fault.
pub(super) fn classify_streamed<E>(error: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &error
        && matches!(service.err().code(), Some("RequestTimeout" | "IncompleteBody"))
    {
        return StorageError::Client(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the request body stopped arriving before it was complete",
        ));
    }
    classify(error)
}

/// As `classify`, for the completion of an upload whose parts the client
/// sent: S3's `InvalidPart` (a part not stored with the ETag named, replaced
/// since it was listed) is a `PartMismatch`, which the client can retry.
pub(super) fn classify_client_completion<E>(error: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &error
        && service.err().code() == Some("InvalidPart")
    {
        return StorageError::PartMismatch(service.err().message().unwrap_or("InvalidPart").to_owned());
    }
    classify(error)
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn refusal(status: u16, code: &str) -> SdkError<CompleteMultipartUploadError, HttpResponse> {
        let raw = HttpResponse::new(status.try_into().expect("status"), SdkBody::empty());
        let error = CompleteMultipartUploadError::generic(ErrorMetadata::builder().code(code).message("m").build());
        SdkError::service_error(error, raw)
    }

    #[test]
    fn a_streamed_body_the_client_stopped_sending_is_the_clients_fault() {
        for code in ["RequestTimeout", "IncompleteBody"] {
            assert!(matches!(classify_streamed(refusal(400, code)), StorageError::Client(_)), "{code}");
            assert!(matches!(classify(refusal(400, code)), StorageError::Backend(_)), "Coffer's own body: {code}");
        }
        assert!(matches!(classify_streamed(refusal(400, "MalformedXML")), StorageError::Backend(_)));
        assert!(matches!(classify(refusal(503, "SlowDown")), StorageError::Unavailable(_)));
    }

    #[test]
    fn only_a_completion_of_client_parts_calls_a_replaced_part_a_mismatch() {
        assert!(matches!(classify(refusal(400, "InvalidPart")), StorageError::Backend(_)));
        assert!(matches!(classify_client_completion(refusal(400, "InvalidPart")), StorageError::PartMismatch(_)));
        assert!(matches!(classify_client_completion(refusal(400, "InvalidPartOrder")), StorageError::Backend(_)));
        assert!(matches!(classify_client_completion(refusal(404, "NoSuchUpload")), StorageError::NotFound));
    }
}
