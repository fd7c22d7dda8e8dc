//! `/api/v1/admin/audit*`: query, export, verify.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::cursor;
use super::extract::Caller;
use crate::metadata::AuditQuery;
use crate::service::audit::ExportFormat;
use crate::service::{ServiceError, Services};

#[derive(Deserialize)]
pub struct Filters {
    actor: Option<String>,
    action: Option<String>,
    bucket: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<usize>,
    format: Option<ExportFormat>,
}

/// Characters in a text filter; longer values match nothing that is stored.
const MAX_FILTER_CHARS: usize = 256;

impl Filters {
    fn query(&self) -> Result<AuditQuery, ServiceError> {
        for (name, value) in [("actor", &self.actor), ("action", &self.action), ("bucket", &self.bucket)] {
            if let Some(value) = value
                && (value.chars().count() > MAX_FILTER_CHARS || value.chars().any(char::is_control))
            {
                return Err(ServiceError::bad_request(
                    "invalid-filter",
                    format!("{name} must be at most {MAX_FILTER_CHARS} characters, none of them control characters"),
                ));
            }
        }
        let before_id = match &self.cursor {
            Some(cursor) => Some(cursor::decode(cursor)?.parse().map_err(|_| {
                ServiceError::bad_request("invalid-cursor", "the cursor is not one this server issued")
            })?),
            None => None,
        };
        Ok(AuditQuery {
            actor: self.actor.clone(),
            action: self.action.clone(),
            bucket: self.bucket.clone(),
            since: self.since,
            until: self.until,
            before_id,
            after_id: None,
            ascending: false,
            limit: self.limit.unwrap_or(cursor::DEFAULT_PAGE),
        })
    }
}

/// The filters of a request, read but not yet judged: the service refuses a
/// caller who may not read the trail (403, audited) before it looks at them.
fn filters(request: &HttpRequest) -> Result<(AuditQuery, ExportFormat), ServiceError> {
    let filters = web::Query::<Filters>::from_query(request.query_string())
        .map_err(|error| ServiceError::bad_request("invalid-query", error.to_string()))?;
    Ok((filters.query()?, filters.format.unwrap_or(ExportFormat::Jsonl)))
}

pub async fn list(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    let query = filters(&request).map(|(query, _)| query);
    let (events, next) = services.audit_events(&caller.ctx, &caller.principal, query).await?;
    let next_cursor = next.map(|id| cursor::encode(&id.to_string()));
    Ok(HttpResponse::Ok().json(serde_json::json!({ "events": events, "next_cursor": next_cursor })))
}

pub async fn export(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    let filters = filters(&request);
    let format = filters.as_ref().map_or(ExportFormat::Jsonl, |(_, format)| *format);
    let stream = services.audit_export(&caller.ctx, &caller.principal, filters.map(|(query, _)| query), format).await?;
    let (content_type, extension) = match format {
        ExportFormat::Jsonl => ("application/x-ndjson", "jsonl"),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let filename = format!("coffer-audit-{}.{extension}", services.clock.now().format("%Y%m%dT%H%M%SZ"));
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")))
        .streaming(stream))
}

pub async fn verify(services: web::Data<Services>, caller: Caller) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(services.audit_verify(&caller.ctx, &caller.principal).await?))
}
