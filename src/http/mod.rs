//! The HTTP surface: routes, extractors, middleware and problem+json errors.
//! Handlers stay thin: parse the request, call a service, shape the response.

mod health;
pub mod problem;
pub mod request_id;

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
        .wrap(ErrorHandlers::new().default_handler(problem::problemize))
        .wrap(from_fn(request_id::middleware))
        .service(web::resource("/health/live").route(web::get().to(health::live)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)))
}
