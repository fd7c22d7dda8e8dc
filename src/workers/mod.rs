//! Background loops with graceful shutdown (reconciler, lifecycle, thumbnail queue).
