//! The OpenAPI 3.1 document of the HTTP API, built from one table of
//! operations (kept equal to the route table by a test) and served at
//! `/api/v1/openapi.json`; `scripts/schemathesis` validates it with
//! openapi-spec-validator before fuzzing the server with it.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// A query or header parameter: name, JSON type (`string`, `integer`, `boolean`, `date-time`), description.
type Param = (&'static str, &'static str, &'static str);

/// One operation of the API.
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    tag: &'static str,
    summary: &'static str,
    public: bool,
    body: Option<Value>,
    query: &'static [Param],
    ok: &'static [(u16, &'static str)],
    errors: &'static [u16],
}

fn op(method: &'static str, path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    Op { method, path, tag, summary, public: false, body: None, query: &[], ok: &[(200, "json")], errors: &[] }
}

impl Op {
    fn public(mut self) -> Self {
        self.public = true;
        self
    }
    fn json(mut self, schema: &str) -> Self {
        self.body = Some(json!({"required": true, "content": {"application/json": {"schema": reference(schema)}}}));
        self
    }
    fn raw_body(mut self) -> Self {
        let schema = json!({"type": "string", "format": "binary"});
        self.body = Some(json!({"required": true, "content": {"application/octet-stream": {"schema": schema}}}));
        self
    }
    fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn query(mut self, query: &'static [Param]) -> Self {
        self.query = query;
        self
    }
    fn ok(mut self, ok: &'static [(u16, &'static str)]) -> Self {
        self.ok = ok;
        self
    }
    fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }
}

fn reference(schema: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

const PAGE: &[Param] =
    &[("cursor", "string", "opaque cursor from the previous page"), ("limit", "integer", "page size (1-1000)")];
const AUDIT: &[Param] = &[
    ("actor", "string", "username"),
    ("action", "string", "dotted action name"),
    ("bucket", "string", "bucket name"),
    ("since", "date-time", "RFC 3339"),
    ("until", "date-time", "RFC 3339"),
    ("cursor", "string", "opaque cursor"),
    ("limit", "integer", "page size"),
];
const EXPORT: &[Param] =
    &[("format", "string", "jsonl or csv"), ("since", "date-time", "RFC 3339"), ("until", "date-time", "RFC 3339")];
const LISTING: &[Param] = &[
    ("prefix", "string", "only keys starting with this"),
    ("delimiter", "string", "group keys by this character into prefixes"),
    ("cursor", "string", "opaque cursor"),
    ("limit", "integer", "page size (1-1000, default 100)"),
];
const DOWNLOAD: &[Param] = &[("download", "string", "1 forces Content-Disposition: attachment")];
const SHARE_LIST: &[Param] = &[
    ("bucket", "string", "only links on this bucket (everyone's, for its managers)"),
    ("cursor", "string", "opaque cursor from the previous page"),
    ("limit", "integer", "page size (1-1000)"),
];
const THUMB: &[Param] = &[("size", "integer", "64, 128, 256, 512 or 1024"), ("format", "string", "webp or jpeg")];

const RW: &[u16] = &[400, 401, 403, 404, 409, 413, 415, 429];
const READ: &[u16] = &[400, 401, 403, 404, 429];

/// Every operation, in route-table order.
pub fn operations() -> Vec<Op> {
    let form = json!({"required": true, "content": {"multipart/form-data": {"schema": reference("UploadForm")}}});
    let password_form = json!({"required": true, "content": {
        "application/x-www-form-urlencoded": {"schema": reference("SharePassword")}}});
    vec![
        op("GET", "/health/live", "health", "Liveness").public(),
        op("GET", "/health/ready", "health", "Readiness of database, storage and cache").public().errors(&[503]),
        op("GET", "/metrics", "health", "Prometheus metrics").public().ok(&[(200, "text")]).errors(&[401]),
        op("GET", "/api/v1/openapi.json", "docs", "This document").public(),
        op("GET", "/api/docs", "docs", "This document as a page").public().ok(&[(200, "html")]),
        op("POST", "/api/v1/auth/login", "auth", "Log in with a password")
            .public()
            .json("Login")
            .ok(&[(200, "ref:LoginResult")])
            .errors(&[400, 401, 403, 413, 415, 429]),
        op("POST", "/api/v1/auth/mfa", "auth", "Finish a login with a TOTP or recovery code")
            .public()
            .json("MfaLogin")
            .ok(&[(200, "ref:Tokens")])
            .errors(&[400, 401, 413, 415, 429]),
        op("POST", "/api/v1/auth/refresh", "auth", "Rotate a refresh token")
            .public()
            .json("Refresh")
            .ok(&[(200, "ref:Tokens")])
            .errors(&[400, 401, 413, 415, 429]),
        op("POST", "/api/v1/auth/logout", "auth", "Revoke a refresh token family")
            .public()
            .json("Refresh")
            .ok(&[(204, "")])
            .errors(&[400, 401, 413, 415, 429]),
        op("GET", "/api/v1/me", "me", "The caller").errors(READ),
        op("POST", "/api/v1/me/password", "me", "Change the password")
            .json("PasswordChange")
            .ok(&[(204, "")])
            .errors(RW),
        op("POST", "/api/v1/me/mfa/totp", "me", "Start TOTP enrolment").errors(RW),
        op("DELETE", "/api/v1/me/mfa/totp", "me", "Turn TOTP off").json("Code").ok(&[(204, "")]).errors(RW),
        op("POST", "/api/v1/me/mfa/totp/confirm", "me", "Confirm TOTP enrolment").json("Code").errors(RW),
        op("POST", "/api/v1/me/api-keys", "me", "Create an API key").json("NewApiKey").ok(&[(201, "json")]).errors(RW),
        op("GET", "/api/v1/me/api-keys", "me", "List API keys").errors(READ),
        op("DELETE", "/api/v1/me/api-keys/{id}", "me", "Revoke an API key").ok(&[(204, "")]).errors(READ),
        op("GET", "/api/v1/admin/users", "admin", "List accounts").query(PAGE).errors(READ),
        op("POST", "/api/v1/admin/users", "admin", "Create an account")
            .json("NewUser")
            .ok(&[(201, "ref:User")])
            .errors(RW),
        op("GET", "/api/v1/admin/users/{username}", "admin", "One account").ok(&[(200, "ref:User")]).errors(READ),
        op("PATCH", "/api/v1/admin/users/{username}", "admin", "Change an account")
            .json("UserPatch")
            .ok(&[(200, "ref:User")])
            .errors(RW),
        op("DELETE", "/api/v1/admin/users/{username}", "admin", "Delete an account").ok(&[(204, "")]).errors(RW),
        op("POST", "/api/v1/admin/users/{username}/reset-mfa", "admin", "Turn an account's MFA off")
            .ok(&[(204, "")])
            .errors(RW),
        op("GET", "/api/v1/admin/audit", "audit", "Query the audit trail, newest first").query(AUDIT).errors(READ),
        op("GET", "/api/v1/admin/audit/export", "audit", "Export the audit trail")
            .query(EXPORT)
            .ok(&[(200, "stream")])
            .errors(READ),
        op("GET", "/api/v1/admin/audit/verify", "audit", "Verify the hash chain").errors(READ),
        op("GET", "/api/v1/buckets", "buckets", "Buckets the caller can see")
            .ok(&[(200, "ref:BucketList")])
            .errors(READ),
        op("POST", "/api/v1/buckets", "buckets", "Create a bucket").json("NewBucket").ok(&[(201, "json")]).errors(RW),
        op("DELETE", "/api/v1/buckets/{bucket}", "buckets", "Delete an empty bucket").ok(&[(204, "")]).errors(RW),
        op("GET", "/api/v1/buckets/{bucket}/grants", "buckets", "List grants").errors(READ),
        op("GET", "/api/v1/buckets/{bucket}/objects", "objects", "List objects")
            .query(LISTING)
            .ok(&[(200, "ref:ObjectList")])
            .errors(READ),
        op("POST", "/api/v1/buckets/{bucket}/objects", "objects", "Upload files (multipart/form-data)")
            .with_body(form)
            .ok(&[(201, "ref:StoredObjects")])
            .errors(RW),
        op("PUT", "/api/v1/buckets/{bucket}/objects/{key}", "objects", "Store an object")
            .raw_body()
            .ok(&[(201, "ref:Object")])
            .errors(&[400, 401, 403, 404, 409, 411, 412, 413, 429]),
        op("GET", "/api/v1/buckets/{bucket}/objects/{key}", "objects", "Read an object")
            .query(DOWNLOAD)
            .ok(&[(200, "bytes"), (206, "bytes"), (304, "")])
            .errors(&[400, 401, 403, 404, 412, 416, 429]),
        op("HEAD", "/api/v1/buckets/{bucket}/objects/{key}", "objects", "An object's headers")
            .query(DOWNLOAD)
            .ok(&[(200, ""), (304, "")])
            .errors(&[400, 401, 403, 404, 412, 416, 429]),
        op("DELETE", "/api/v1/buckets/{bucket}/objects/{key}", "objects", "Delete an object")
            .ok(&[(204, "")])
            .errors(RW),
        op("POST", "/api/v1/buckets/{bucket}/copy/{key}", "objects", "Copy an object")
            .json("Copy")
            .ok(&[(201, "ref:Object")])
            .errors(RW),
        op("GET", "/api/v1/buckets/{bucket}/uploads", "uploads", "Open uploads: the caller's, or all for managers")
            .query(PAGE)
            .errors(READ),
        op("POST", "/api/v1/buckets/{bucket}/uploads", "uploads", "Start a multipart upload")
            .json("NewUpload")
            .ok(&[(201, "json")])
            .errors(RW),
        op("DELETE", "/api/v1/buckets/{bucket}/uploads/{upload_id}", "uploads", "Abort an upload")
            .ok(&[(204, "")])
            .errors(RW),
        op("GET", "/api/v1/buckets/{bucket}/uploads/{upload_id}/parts", "uploads", "List received parts").errors(READ),
        op("PUT", "/api/v1/buckets/{bucket}/uploads/{upload_id}/parts/{n}", "uploads", "Upload a part")
            .raw_body()
            .errors(&[400, 401, 403, 404, 409, 411, 413, 429]),
        op("POST", "/api/v1/buckets/{bucket}/uploads/{upload_id}/complete", "uploads", "Complete an upload")
            .json("Completion")
            .ok(&[(201, "ref:Object")])
            .errors(RW),
        op("PUT", "/api/v1/buckets/{bucket}/grants/{username}", "buckets", "Grant a permission")
            .json("Grant")
            .ok(&[(204, "")])
            .errors(RW),
        op("DELETE", "/api/v1/buckets/{bucket}/grants/{username}", "buckets", "Remove a grant")
            .ok(&[(204, "")])
            .errors(RW),
        op(
            "POST",
            "/api/v1/buckets/{bucket}/uploads/{upload_id}/parts/{n}/presign",
            "uploads",
            "Presign a part upload",
        )
        .with_body(json!({"required": false, "content": {"application/json": {"schema": reference("PartPresign")}}}))
        .errors(RW),
        op("GET", "/api/v1/buckets/{bucket}/retention/{key}", "retention", "An object's retention").errors(READ),
        op("PUT", "/api/v1/buckets/{bucket}/retention/{key}", "retention", "Set or remove an object's retention")
            .json("Retention")
            .errors(RW),
        op("GET", "/api/v1/buckets/{bucket}/legal-hold/{key}", "retention", "An object's legal hold").errors(READ),
        op("PUT", "/api/v1/buckets/{bucket}/legal-hold/{key}", "retention", "Set an object's legal hold")
            .json("LegalHold")
            .errors(RW),
        op("GET", "/api/v1/buckets/{bucket}/default-retention", "retention", "The bucket's default retention")
            .ok(&[(200, "json-or-null")])
            .errors(READ),
        op("PUT", "/api/v1/buckets/{bucket}/default-retention", "retention", "Set or clear the default retention")
            .json("DefaultRetentionOrNull")
            .ok(&[(200, "json-or-null")])
            .errors(RW),
        op("GET", "/api/v1/buckets/{bucket}/lifecycle", "lifecycle", "The bucket's lifecycle rules").errors(READ),
        op("PUT", "/api/v1/buckets/{bucket}/lifecycle", "lifecycle", "Replace the lifecycle rules")
            .json("Lifecycle")
            .errors(RW),
        op("DELETE", "/api/v1/buckets/{bucket}/lifecycle", "lifecycle", "Remove the lifecycle rules")
            .ok(&[(204, "")])
            .errors(RW),
        op("GET", "/api/v1/buckets/{bucket}/thumbnails/{key}", "objects", "A thumbnail of an image")
            .query(THUMB)
            .ok(&[(200, "image"), (304, "")])
            .errors(&[400, 401, 403, 404, 415, 422, 429]),
        op("POST", "/api/v1/admin/lifecycle/run", "lifecycle", "Run the lifecycle rules now")
            .json("LifecycleRun")
            .errors(RW),
        op("POST", "/api/v1/presign", "presign", "Presign a GET or PUT").json("Presign").errors(RW),
        op("POST", "/api/v1/shares", "shares", "Create a share link").json("NewShare").ok(&[(201, "json")]).errors(RW),
        op("GET", "/api/v1/shares", "shares", "Share links, newest first: the caller's, or a bucket's")
            .query(SHARE_LIST)
            .errors(READ),
        op("DELETE", "/api/v1/shares/{id}", "shares", "Revoke a share link").ok(&[(204, "")]).errors(READ),
        op("GET", "/s/{token}/thumbnail", "shares", "Preview of a shared image")
            .public()
            .ok(&[(200, "image"), (304, "")])
            .errors(&[401, 404, 410, 415, 422, 429]),
        op("GET", "/s/{token}", "shares", "Open a share link")
            .public()
            .query(DOWNLOAD)
            .ok(&[(200, "bytes"), (206, "bytes"), (304, "")])
            .errors(&[401, 404, 410, 412, 416, 429]),
        op("HEAD", "/s/{token}", "shares", "A shared object's headers")
            .public()
            .ok(&[(200, ""), (304, "")])
            .errors(&[401, 404, 410, 412, 416, 429]),
        op("POST", "/s/{token}", "shares", "Send a share link's password")
            .public()
            .with_body(password_form)
            .ok(&[(200, "bytes")])
            .errors(&[400, 401, 404, 410, 415, 429]),
    ]
}

fn success(kind: &str) -> Value {
    let binary = json!({"type": "string", "format": "binary"});
    match kind {
        "json" => json!({"content": {"application/json": {"schema": {"type": "object"}}}}),
        schema if schema.starts_with("ref:") => {
            json!({"content": {"application/json": {"schema": reference(&schema[4..])}}})
        }
        "json-or-null" => json!({"content": {"application/json": {"schema": {"type": ["object", "null"]}}}}),
        "text" => json!({"content": {"text/plain": {"schema": {"type": "string"}}}}),
        "html" => json!({"content": {"text/html": {"schema": {"type": "string"}}}}),
        "stream" => json!({"content": {"application/x-ndjson": {"schema": binary}, "text/csv": {"schema": binary}}}),
        "image" => json!({"content": {"image/webp": {"schema": binary}, "image/jpeg": {"schema": binary}}}),
        "bytes" => json!({"content": {"*/*": {"schema": binary}}}),
        _ => json!({}),
    }
}

fn parameters(op: &Op) -> Vec<Value> {
    let mut out = Vec::new();
    for segment in op.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let schema = super::openapi_schemas::path_parameter(name);
            out.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
        }
    }
    for (name, kind, description) in op.query {
        let schema = match *kind {
            "date-time" => json!({"type": "string", "format": "date-time"}),
            other => json!({"type": other}),
        };
        out.push(json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description}));
    }
    out
}

fn operation(op: &Op) -> Value {
    let mut responses = Map::new();
    for (status, kind) in op.ok {
        let mut response = success(kind);
        response["description"] = json!(reason(*status));
        responses.insert(status.to_string(), response);
    }
    let problem = json!({"application/problem+json": {"schema": reference("Problem")}});
    for status in op.errors.iter().chain([500, 503].iter()) {
        responses.insert(status.to_string(), json!({"description": reason(*status), "content": problem}));
    }
    responses.insert("default".into(), json!({"description": "Other errors", "content": problem}));
    let mut value = json!({
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": format!("{}_{}", op.method.to_lowercase(), op.path.trim_start_matches('/').replace(['/', '{', '}', '-', '.'], "_")),
        "parameters": parameters(op),
        "responses": responses,
    });
    if op.public {
        value["security"] = json!([]);
    }
    if let Some(body) = &op.body {
        value["requestBody"] = body.clone();
    }
    value
}

fn reason(status: u16) -> &'static str {
    actix_web::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Response")
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut paths = Map::new();
        for op in operations() {
            let item = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
            item[op.method.to_lowercase()] = operation(&op);
        }
        json!({
            "openapi": "3.1.0",
            "info": {
                "title": "Coffer",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Self-hosted object storage gateway. Errors are RFC 9457 problem documents.",
                "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
            },
            "paths": paths,
            "components": {
                "schemas": super::openapi_schemas::schemas(),
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                    "description": "An access token (JWT) or an API key"}},
            },
            "security": [{"bearer": []}],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_registered_route_and_nothing_else() {
        let document = document();
        let paths = document["paths"].as_object().expect("paths");
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in paths {
            for method in item.as_object().expect("item").keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let registered: std::collections::BTreeSet<(String, String)> = crate::http::routes::ROUTES
            .iter()
            .map(|(method, path)| ((*method).to_owned(), crate::http::routes::openapi_path(path)))
            .collect();
        let undocumented: Vec<_> = registered.difference(&documented).collect();
        let unregistered: Vec<_> = documented.difference(&registered).collect();
        assert!(undocumented.is_empty(), "routes missing from the OpenAPI document: {undocumented:?}");
        assert!(unregistered.is_empty(), "documented but not registered: {unregistered:?}");
    }

    #[test]
    fn the_document_is_well_formed() {
        assert_eq!(document()["openapi"], "3.1.0");
        let mut ids = std::collections::HashSet::new();
        for item in document()["paths"].as_object().expect("paths").values() {
            for operation in item.as_object().expect("item").values() {
                assert!(ids.insert(operation["operationId"].as_str().expect("id").to_owned()), "unique ids");
                assert!(operation["responses"].as_object().is_some_and(|r| r.contains_key("default")));
                assert!(operation["summary"].as_str().is_some_and(|s| !s.is_empty()));
            }
        }
        let mut references = Vec::new();
        collect_refs(document(), &mut references);
        let schemas = document()["components"]["schemas"].as_object().expect("schemas");
        for reference in references {
            let name = reference.trim_start_matches("#/components/schemas/");
            assert!(schemas.contains_key(name), "dangling {reference}");
        }
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    out.push(reference.clone());
                }
                map.values().for_each(|v| collect_refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
