//! Component schemas of the OpenAPI document: request bodies as the
//! handlers deserialize them, the problem document, and the upload form.

use serde_json::{Value, json};

fn string() -> Value {
    json!({"type": "string"})
}

fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn strict(required: &[&str], properties: Value) -> Value {
    let mut value = object(required, properties);
    value["additionalProperties"] = json!(false);
    value
}

/// S3 bucket-name rules (3-63 characters of `a-z0-9.-`, alphanumeric at both ends).
const BUCKET: &str = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$";
/// Object keys: no leading `/`, no control characters (empty or `.` segments are refused too).
const KEY: &str = "^[^/\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
const USERNAME: &str = "^[A-Za-z0-9._-]{1,64}$";

fn bucket() -> Value {
    json!({"type": "string", "pattern": BUCKET, "example": "st-bucket"})
}

fn key() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 1024, "pattern": KEY, "example": "hello.txt"})
}

fn password() -> Value {
    json!({"type": "string", "minLength": 10, "maxLength": 1024})
}

/// The schema of a path parameter, by name.
pub fn path_parameter(name: &str) -> Value {
    match name {
        "bucket" => bucket(),
        "key" => key(),
        "username" => json!({"type": "string", "pattern": USERNAME, "example": "st-user"}),
        "n" => json!({"type": "integer", "minimum": 1, "maximum": 10000, "example": 1}),
        _ => json!({"type": "string", "minLength": 1, "maxLength": 128}),
    }
}

/// Every schema under `components.schemas`.
pub fn schemas() -> Value {
    let mode = json!({"type": "string", "enum": ["GOVERNANCE", "COMPLIANCE"]});
    let role = json!({"type": "string", "enum": ["admin", "user", "auditor"]});
    let days = json!({"type": "integer", "minimum": 1, "maximum": 36500});
    let default_retention = object(&["mode", "days"], json!({"mode": mode, "days": days}));
    let rule = strict(
        &["id", "enabled"],
        json!({
            "id": string(), "prefix": string(), "enabled": {"type": "boolean"},
            "expire_after_days": days, "abort_incomplete_uploads_after_days": days,
        }),
    );
    json!({
        "Problem": object(&["type", "title", "status"], json!({
            "type": string(), "title": string(), "status": {"type": "integer"}, "detail": string(),
        })),
        "Login": object(&["username", "password"], json!({"username": string(), "password": string()})),
        "MfaLogin": object(&["mfa_token", "code"], json!({"mfa_token": string(), "code": string()})),
        "Refresh": object(&["refresh_token"], json!({"refresh_token": string()})),
        "PasswordChange": object(&["current_password", "new_password"],
            json!({"current_password": string(), "new_password": password()})),
        "Code": object(&["code"], json!({"code": string()})),
        "NewApiKey": object(&["name"], json!({
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "expires_in_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650},
            "scopes": {"type": ["array", "null"], "items": {"type": "string", "enum": ["read", "write"]}},
        })),
        "NewUser": object(&["username", "password", "role"], json!({
            "username": {"type": "string", "pattern": USERNAME}, "password": password(), "role": role,
            "quota_bytes": {"type": ["integer", "null"], "minimum": 0},
        })),
        "UserPatch": strict(&[], json!({
            "role": role, "disabled": {"type": "boolean"},
            "quota_bytes": {"type": ["integer", "null"], "minimum": 0}, "password": password(),
        })),
        "DefaultRetention": default_retention,
        "DefaultRetentionOrNull": {"oneOf": [{"$ref": "#/components/schemas/DefaultRetention"}, {"type": "null"}]},
        "NewBucket": object(&["name"], json!({
            "name": bucket(),
            "default_retention": {"oneOf": [{"$ref": "#/components/schemas/DefaultRetention"}, {"type": "null"}]},
        })),
        "Grant": object(&["permission"], json!({"permission": {"type": "string", "enum": ["read", "write", "manage"]}})),
        "Copy": object(&["to_key"], json!({"to_bucket": {"oneOf": [bucket(), {"type": "null"}]}, "to_key": key()})),
        "NewUpload": object(&["key"], json!({
            "key": key(), "content_type": nullable("string"), "size": {"type": ["integer", "null"], "minimum": 0},
        })),
        "Completion": object(&["parts"], json!({"parts": {"type": "array", "items": object(&["part_number", "etag"],
            json!({"part_number": {"type": "integer", "minimum": 1, "maximum": 10000}, "etag": string()}))}})),
        "Presign": object(&["bucket", "key", "method", "expires_in_seconds"], json!({
            "bucket": bucket(), "key": key(), "method": {"type": "string", "enum": ["GET", "PUT"]},
            "expires_in_seconds": {"type": "integer", "minimum": 1, "maximum": 604_800},
            "transfer_mode": {"type": ["string", "null"], "enum": ["gateway", "direct", null]},
        })),
        "PartPresign": strict(&[], json!({"size": {"type": ["integer", "null"], "minimum": 0, "maximum": 5_368_709_120_i64}})),
        "Retention": {"oneOf": [
            strict(&[], json!({"mode": {"type": ["string", "null"], "enum": ["GOVERNANCE", "COMPLIANCE", null]},
                "retain_until": {"type": ["string", "null"], "format": "date-time"}})),
            {"type": "null"},
        ]},
        "LegalHold": strict(&["status"], json!({"status": {"type": "string", "enum": ["ON", "OFF"]}})),
        "Lifecycle": strict(&["rules"], json!({"rules": {"type": "array", "maxItems": 100, "items": rule}})),
        "LifecycleRun": strict(&["dry_run"], json!({
            "dry_run": {"type": "boolean"}, "as_of": {"type": ["string", "null"], "format": "date-time"},
        })),
        "NewShare": object(&["bucket", "key"], json!({
            "bucket": bucket(), "key": key(),
            "expires_in_seconds": {"type": ["integer", "null"], "minimum": 1, "maximum": 3_153_600_000_i64},
            "password": nullable("string"),
            "max_downloads": {"type": ["integer", "null"], "minimum": 1},
        })),
        "Tokens": object(&["access_token", "refresh_token", "token_type", "expires_in"], json!({
            "access_token": string(), "refresh_token": string(),
            "token_type": {"type": "string", "enum": ["Bearer"]}, "expires_in": {"type": "integer", "minimum": 1},
        })),
        "LoginResult": {"oneOf": [
            {"$ref": "#/components/schemas/Tokens"},
            object(&["mfa_required", "mfa_token"], json!({"mfa_required": {"const": true}, "mfa_token": string()})),
        ]},
        "User": object(&["username", "role", "disabled", "mfa_enabled", "used_bytes"], json!({
            "username": string(), "role": role, "disabled": {"type": "boolean"}, "mfa_enabled": {"type": "boolean"},
            "quota_bytes": {"type": ["integer", "null"]}, "used_bytes": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"},
        })),
        "Object": object(&["key", "size", "etag", "content_type", "created_at"], json!({
            "key": string(), "size": {"type": "integer", "minimum": 0}, "etag": string(),
            "sha256": nullable("string"), "content_type": string(),
            "created_at": {"type": "string", "format": "date-time"},
        })),
        "StoredObjects": object(&["objects"], json!({
            "objects": {"type": "array", "items": {"$ref": "#/components/schemas/Object"}},
        })),
        "ObjectList": object(&["objects", "prefixes", "next_cursor"], json!({
            "objects": {"type": "array", "items": object(&["key", "size"], json!({
                "key": string(), "size": {"type": "integer", "minimum": 0}, "etag": nullable("string"),
                "content_type": string(), "last_modified": {"type": "string", "format": "date-time"},
            }))},
            "prefixes": {"type": "array", "items": string()},
            "next_cursor": nullable("string"),
        })),
        "BucketList": object(&["buckets"], json!({
            "buckets": {"type": "array", "items": object(&["name", "created_at"], json!({
                "name": string(), "created_at": {"type": "string", "format": "date-time"},
            }))},
        })),
        "SharePassword": object(&["password"], json!({"password": string()})),
        "UploadForm": object(&["file"], json!({
            "prefix": string(), "file": {"type": "string", "format": "binary"},
        })),
    })
}
