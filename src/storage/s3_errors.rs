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
                (_, "InvalidPart" | "InvalidPartOrder") => {
                    StorageError::PartMismatch(service.err().message().unwrap_or(code).to_owned())
                }
                (401 | 403 | 500..=599, _) => StorageError::Unavailable(described()),
                _ => StorageError::Backend(described()),
            }
        }
        _ => StorageError::Backend(described()),
    }
}
