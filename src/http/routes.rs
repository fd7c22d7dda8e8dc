//! The route table: one list of `path => { METHOD handler, … }` that both
//! registers the handlers and names every route for the OpenAPI test.

use actix_web::guard::{Guard, GuardContext};
use actix_web::http::{Method, header};
use actix_web::{HttpResponse, web};

use super::{
    admin_users, audit, auth, buckets, docs, health, me, objects, presign, retention, shares, thumbnails, uploads,
};

/// The template of the route a request matched, kept with the route so that
/// logs and metrics name it without matching the path a second time.
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// Matches one method. actix's own method guard also records, on every
/// check, the methods tried so far in the request's extensions (a map
/// allocated per request) for its 405 answer; here each resource knows its
/// methods from the table and answers 405 itself (`method_not_allowed`).
struct OnlyMethod(Method);

impl Guard for OnlyMethod {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.head().method == self.0
    }
}

/// The answer of a resource to a method it has no route for; `edge` turns it into problem+json.
fn method_not_allowed(allow: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, allow)).finish()
}

macro_rules! routes {
    ($( $path:literal => { $first:ident $first_handler:path $(, $method:ident $handler:path )* $(,)? } )*) => {
        /// Every registered `(method, path template)`, in registration order.
        pub const ROUTES: &[(&str, &str)] =
            &[ $( (stringify!($first), $path), $( (stringify!($method), $path), )* )* ];

        /// Registers every route of the table.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $( cfg.service(
                web::resource($path).app_data(RouteTemplate($path))
                    .route(web::route().guard(OnlyMethod(Method::$first)).to($first_handler))
                    $( .route(web::route().guard(OnlyMethod(Method::$method)).to($handler)) )*
                    .default_service(web::to(|| async {
                        method_not_allowed(concat!(stringify!($first) $(, ", ", stringify!($method))*))
                    }))
            ); )*
        }
    };
}

// Paths are matched one route after the other, each with its own regex, and
// no two templates match the same path: the data path comes first.
routes! {
    "/api/v1/buckets/{bucket}/objects/{key:.*}" => {
        GET objects::get, HEAD objects::head, PUT objects::put, DELETE objects::delete
    }
    "/api/v1/buckets/{bucket}/thumbnails/{key:.*}" => { GET thumbnails::get }
    "/api/v1/buckets/{bucket}/uploads/{upload_id}/parts/{n}" => { PUT uploads::put_part }
    "/s/{token}" => { GET shares::get, HEAD shares::head, POST shares::post }
    "/health/live" => { GET health::live }
    "/health/ready" => { GET health::ready }
    "/metrics" => { GET health::metrics }
    "/api/v1/openapi.json" => { GET docs::openapi_json }
    "/api/docs" => { GET docs::page }
    "/api/v1/auth/login" => { POST auth::login }
    "/api/v1/auth/mfa" => { POST auth::mfa }
    "/api/v1/auth/refresh" => { POST auth::refresh }
    "/api/v1/auth/logout" => { POST auth::logout }
    "/api/v1/me" => { GET me::me }
    "/api/v1/me/password" => { POST me::change_password }
    "/api/v1/me/mfa/totp" => { POST me::enrol_totp, DELETE me::disable_totp }
    "/api/v1/me/mfa/totp/confirm" => { POST me::confirm_totp }
    "/api/v1/me/api-keys" => { POST me::create_api_key, GET me::list_api_keys }
    "/api/v1/me/api-keys/{id}" => { DELETE me::revoke_api_key }
    "/api/v1/admin/users" => { GET admin_users::list, POST admin_users::create }
    "/api/v1/admin/users/{username}" => {
        GET admin_users::get, PATCH admin_users::patch, DELETE admin_users::delete
    }
    "/api/v1/admin/users/{username}/reset-mfa" => { POST admin_users::reset_mfa }
    "/api/v1/admin/audit" => { GET audit::list }
    "/api/v1/admin/audit/export" => { GET audit::export }
    "/api/v1/admin/audit/verify" => { GET audit::verify }
    "/api/v1/buckets" => { GET buckets::list, POST buckets::create }
    "/api/v1/buckets/{bucket}" => { DELETE buckets::delete }
    "/api/v1/buckets/{bucket}/grants" => { GET buckets::list_grants }
    "/api/v1/buckets/{bucket}/objects" => { GET objects::list, POST objects::post_form }
    "/api/v1/buckets/{bucket}/copy/{key:.*}" => { POST objects::copy }
    "/api/v1/buckets/{bucket}/uploads" => { GET uploads::list, POST uploads::create }
    "/api/v1/buckets/{bucket}/uploads/{upload_id}" => { DELETE uploads::abort }
    "/api/v1/buckets/{bucket}/uploads/{upload_id}/parts" => { GET uploads::list_parts }
    "/api/v1/buckets/{bucket}/uploads/{upload_id}/complete" => { POST uploads::complete }
    "/api/v1/buckets/{bucket}/grants/{username}" => { PUT buckets::set_grant, DELETE buckets::remove_grant }
    "/api/v1/buckets/{bucket}/uploads/{upload_id}/parts/{n}/presign" => { POST presign::presign_part }
    "/api/v1/buckets/{bucket}/retention/{key:.*}" => {
        GET retention::get_retention, PUT retention::put_retention
    }
    "/api/v1/buckets/{bucket}/legal-hold/{key:.*}" => {
        GET retention::get_legal_hold, PUT retention::put_legal_hold
    }
    "/api/v1/buckets/{bucket}/default-retention" => {
        GET retention::get_default_retention, PUT retention::put_default_retention
    }
    "/api/v1/buckets/{bucket}/lifecycle" => {
        GET retention::get_lifecycle, PUT retention::put_lifecycle, DELETE retention::delete_lifecycle
    }
    "/api/v1/admin/lifecycle/run" => { POST retention::run_lifecycle }
    "/api/v1/presign" => { POST presign::presign }
    "/api/v1/shares" => { POST shares::create, GET shares::list }
    "/api/v1/shares/{id}" => { DELETE shares::revoke }
    "/s/{token}/thumbnail" => { GET shares::thumbnail }
}

/// The OpenAPI form of a path template: `{key:.*}` → `{key}`.
pub fn openapi_path(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let (mut in_param, mut in_regex) = (false, false);
    for c in template.chars() {
        match c {
            '{' if !in_param => {
                in_param = true;
                out.push(c);
            }
            ':' if in_param => in_regex = true,
            '}' if in_param => {
                (in_param, in_regex) = (false, false);
                out.push(c);
            }
            _ if in_regex => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_openapi_paths() {
        assert_eq!(openapi_path("/api/v1/buckets/{bucket}/objects/{key:.*}"), "/api/v1/buckets/{bucket}/objects/{key}");
        assert_eq!(openapi_path("/s/{token}"), "/s/{token}");
        assert_eq!(openapi_path("/health/live"), "/health/live");
    }

    #[test]
    fn no_route_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        for route in ROUTES {
            assert!(seen.insert(route), "{route:?} twice");
        }
    }
}
