//! Errors of the metadata store, independent of the engine behind it.

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was violated, or a store rule refused the change
    /// (`what` names what is in the way).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A reference rule was violated: the `what` written refers to a row that
    /// is gone (a bucket or user deleted meanwhile), or a row still referred to
    /// was to be deleted.
    #[error("{0} refers to something that no longer exists")]
    Dangling(&'static str),
    /// The database cannot be reached (pool timeout, connection refused, locked too long).
    /// Text the database cannot store (PostgreSQL refuses NUL characters):
    /// the client's input, not a fault of ours.
    #[error("{0} contains a character that cannot be stored")]
    InvalidText(&'static str),
    /// Stored data failed an integrity check (the audit anchor's seal): nothing was changed.
    #[error("{0}")]
    Integrity(&'static str),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl MetaError {
    /// Classifies a driver error; unique violations become `Conflict(what)`,
    /// foreign-key violations `Dangling(what)`.
    pub(crate) fn from_sqlx(error: sqlx::Error, what: &'static str) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Self::NotFound(what),
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(what),
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => Self::Dangling(what),
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Self::Unavailable(error)
            }
            sqlx::Error::Database(db) if is_busy(db.as_ref()) => Self::Unavailable(error),
            // character_not_in_repertoire (a NUL in text), untranslatable_character.
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("22021" | "22P05")) => {
                Self::InvalidText(what)
            }
            _ => Self::Other(error),
        }
    }

    /// A corrupt row (a value that no longer parses) is an internal error.
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Other(sqlx::Error::Decode(format!("corrupt row: {what}").into()))
    }
}

fn is_busy(error: &dyn sqlx::error::DatabaseError) -> bool {
    // SQLite: SQLITE_BUSY (5) / SQLITE_LOCKED (6); PostgreSQL: admin shutdown / cannot connect now,
    // and a transaction aborted to break a deadlock or a serialization conflict: nothing was
    // written, and the same request sent again can succeed (writes take locks in one order, so
    // this is a safety net, not a path the tests expect).
    matches!(error.code().as_deref(), Some("5" | "6" | "517" | "57P01" | "57P03" | "40P01" | "40001"))
}

/// Maps driver errors for one kind of thing (`.map_err(sql_err("user"))`).
pub(crate) fn sql_err(what: &'static str) -> impl Fn(sqlx::Error) -> MetaError {
    move |error| MetaError::from_sqlx(error, what)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::MetaError;

    /// A driver error carrying only a SQLSTATE.
    #[derive(Debug, thiserror::Error)]
    #[error("sqlstate {0}")]
    struct Coded(&'static str);

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            match self.0 {
                "23505" => sqlx::error::ErrorKind::UniqueViolation,
                "23503" => sqlx::error::ErrorKind::ForeignKeyViolation,
                _ => sqlx::error::ErrorKind::Other,
            }
        }
    }

    fn classify(code: &'static str) -> MetaError {
        MetaError::from_sqlx(sqlx::Error::Database(Box::new(Coded(code))), "thing")
    }

    #[test]
    fn an_aborted_deadlock_or_serialization_conflict_is_worth_retrying() {
        for code in ["40P01", "40001", "5", "57P01"] {
            assert!(matches!(classify(code), MetaError::Unavailable(_)), "{code}");
        }
        assert!(matches!(classify("22021"), MetaError::InvalidText("thing")));
        assert!(matches!(classify("42601"), MetaError::Other(_)), "a syntax error is ours");
    }

    #[test]
    fn a_broken_reference_is_not_a_uniqueness_conflict() {
        assert!(matches!(classify("23505"), MetaError::Conflict("thing")));
        assert!(matches!(classify("23503"), MetaError::Dangling("thing")));
    }
}
