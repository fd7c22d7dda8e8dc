//! The HTTP surface: routes, extractors, middleware and problem+json errors.
//! Handlers stay thin: parse the request, call a service, shape the response.

mod admin_users;
mod audit;
mod auth;
mod body;
mod buckets;
mod cursor;
mod docs;
mod edge;
pub mod extract;
mod health;
mod me;
pub mod objects;
pub mod openapi;
mod openapi_schemas;
mod presign;
pub mod problem;
mod rate_limit;
pub mod request_id;
mod retention;
pub mod routes;
pub mod security;
mod shares;
mod thumbnails;
pub mod ui;
mod uploads;

use actix_web::middleware::from_fn;
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
        .wrap(from_fn(edge::middleware))
        .configure(routes::configure)
        .default_service(web::to(ui::serve))
}
