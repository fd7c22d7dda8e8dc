//! The HTTP surface: routes, extractors, middleware and problem+json errors.
//! Handlers stay thin: parse the request, call a service, shape the response.

mod admin_users;
mod audit;
mod auth;
mod body;
mod buckets;
mod cursor;
pub mod extract;
mod health;
mod me;
pub mod objects;
mod presign;
pub mod problem;
mod rate_limit;
pub mod request_id;
mod retention;
mod shares;
mod thumbnails;
pub mod ui;
mod uploads;

use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, web};

use crate::service::Services;

/// Builds the application for one worker.
pub fn app(
    services: web::Data<Services>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let max_json = services.config.max_json_bytes;
    App::new()
        .app_data(services)
        .app_data(web::JsonConfig::default().limit(max_json).error_handler(problem::json_error))
        .app_data(web::PathConfig::default().error_handler(problem::path_error))
        .app_data(web::QueryConfig::default().error_handler(problem::query_error))
        .wrap(from_fn(rate_limit::middleware))
        .wrap(ErrorHandlers::new().default_handler(problem::problemize))
        .wrap(from_fn(request_id::middleware))
        .service(web::resource("/health/live").route(web::get().to(health::live)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
        .service(web::scope("/api/v1").configure(api_v1))
        .service(web::resource("/s/{token}/thumbnail").route(web::get().to(shares::thumbnail)))
        .service(
            web::resource("/s/{token}")
                .route(web::get().to(shares::get))
                .route(web::head().to(shares::head))
                .route(web::post().to(shares::post)),
        )
        .default_service(web::to(ui::serve))
}

fn api_v1(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/login").route(web::post().to(auth::login)))
        .service(web::resource("/auth/mfa").route(web::post().to(auth::mfa)))
        .service(web::resource("/auth/refresh").route(web::post().to(auth::refresh)))
        .service(web::resource("/auth/logout").route(web::post().to(auth::logout)))
        .service(web::resource("/me").route(web::get().to(me::me)))
        .service(web::resource("/me/password").route(web::post().to(me::change_password)))
        .service(
            web::resource("/me/mfa/totp")
                .route(web::post().to(me::enrol_totp))
                .route(web::delete().to(me::disable_totp)),
        )
        .service(web::resource("/me/mfa/totp/confirm").route(web::post().to(me::confirm_totp)))
        .service(
            web::resource("/me/api-keys")
                .route(web::post().to(me::create_api_key))
                .route(web::get().to(me::list_api_keys)),
        )
        .service(web::resource("/me/api-keys/{id}").route(web::delete().to(me::revoke_api_key)))
        .service(
            web::resource("/admin/users")
                .route(web::get().to(admin_users::list))
                .route(web::post().to(admin_users::create)),
        )
        .service(
            web::resource("/admin/users/{username}")
                .route(web::get().to(admin_users::get))
                .route(web::patch().to(admin_users::patch))
                .route(web::delete().to(admin_users::delete)),
        )
        .service(web::resource("/admin/users/{username}/reset-mfa").route(web::post().to(admin_users::reset_mfa)))
        .service(web::resource("/admin/audit").route(web::get().to(audit::list)))
        .service(web::resource("/admin/audit/export").route(web::get().to(audit::export)))
        .service(web::resource("/admin/audit/verify").route(web::get().to(audit::verify)))
        .service(web::resource("/buckets").route(web::get().to(buckets::list)).route(web::post().to(buckets::create)))
        .service(web::resource("/buckets/{bucket}").route(web::delete().to(buckets::delete)))
        .service(web::resource("/buckets/{bucket}/grants").route(web::get().to(buckets::list_grants)))
        .service(
            web::resource("/buckets/{bucket}/objects")
                .route(web::get().to(objects::list))
                .route(web::post().to(objects::post_form)),
        )
        .service(
            web::resource("/buckets/{bucket}/objects/{key:.*}")
                .route(web::put().to(objects::put))
                .route(web::get().to(objects::get))
                .route(web::head().to(objects::head))
                .route(web::delete().to(objects::delete)),
        )
        .service(web::resource("/buckets/{bucket}/copy/{key:.*}").route(web::post().to(objects::copy)))
        .service(web::resource("/buckets/{bucket}/uploads").route(web::post().to(uploads::create)))
        .service(web::resource("/buckets/{bucket}/uploads/{upload_id}").route(web::delete().to(uploads::abort)))
        .service(web::resource("/buckets/{bucket}/uploads/{upload_id}/parts").route(web::get().to(uploads::list_parts)))
        .service(
            web::resource("/buckets/{bucket}/uploads/{upload_id}/parts/{n}").route(web::put().to(uploads::put_part)),
        )
        .service(
            web::resource("/buckets/{bucket}/uploads/{upload_id}/complete").route(web::post().to(uploads::complete)),
        )
        .service(
            web::resource("/buckets/{bucket}/grants/{username}")
                .route(web::put().to(buckets::set_grant))
                .route(web::delete().to(buckets::remove_grant)),
        )
        .service(
            web::resource("/buckets/{bucket}/uploads/{upload_id}/parts/{n}/presign")
                .route(web::post().to(presign::presign_part)),
        )
        .service(
            web::resource("/buckets/{bucket}/retention/{key:.*}")
                .route(web::get().to(retention::get_retention))
                .route(web::put().to(retention::put_retention)),
        )
        .service(
            web::resource("/buckets/{bucket}/legal-hold/{key:.*}")
                .route(web::get().to(retention::get_legal_hold))
                .route(web::put().to(retention::put_legal_hold)),
        )
        .service(
            web::resource("/buckets/{bucket}/default-retention")
                .route(web::get().to(retention::get_default_retention))
                .route(web::put().to(retention::put_default_retention)),
        )
        .service(
            web::resource("/buckets/{bucket}/lifecycle")
                .route(web::get().to(retention::get_lifecycle))
                .route(web::put().to(retention::put_lifecycle))
                .route(web::delete().to(retention::delete_lifecycle)),
        )
        .service(web::resource("/buckets/{bucket}/thumbnails/{key:.*}").route(web::get().to(thumbnails::get)))
        .service(web::resource("/admin/lifecycle/run").route(web::post().to(retention::run_lifecycle)))
        .service(web::resource("/presign").route(web::post().to(presign::presign)))
        .service(web::resource("/shares").route(web::post().to(shares::create)).route(web::get().to(shares::list)))
        .service(web::resource("/shares/{id}").route(web::delete().to(shares::revoke)));
}
