//! Why a request was refused or failed: one type for the node's services
//! (search, alerts, hotlists, disclosure, admin), turned into a gRPC status in one place
//! ([`From<ServiceError> for Status`]), so a kind of refusal has one code
//! whichever service gives it.

use nadc_query::QueryError;
use tonic::Status;

/// Why a request was refused or failed.
#[derive(Debug)]
pub enum ServiceError {
    /// A request field is missing, malformed or out of range
    /// (`INVALID_ARGUMENT`).
    Invalid(String),
    /// The request is well formed but cannot run as asked: over a cap
    /// without `allow_broad`, a window too long (`FAILED_PRECONDITION`).
    Precondition(String),
    /// An access rule refused it: role, case, force (`PERMISSION_DENIED`).
    Denied(String),
    /// What it names does not exist (`NOT_FOUND`).
    NotFound(String),
    /// What it would create exists already (`ALREADY_EXISTS`).
    Exists(String),
    /// The governed path's own decision, as it gave it: the data-age tier,
    /// the case register, the relay, the search workers (their codes and
    /// retry hints kept).
    Governed(Status),
    /// A node-wide resource is spent: the result spool (`RESOURCE_EXHAUSTED`).
    Exhausted(String),
    /// The store failed (`UNAVAILABLE`).
    Unavailable(String),
    /// A part the request needs is down for now, the replicated log
    /// (`UNAVAILABLE`, with `retry-after-ms`: nothing was acknowledged,
    /// send it again then).
    Later(String, std::time::Duration),
    /// A fault of the node itself (`INTERNAL`).
    Internal(String),
}

impl ServiceError {
    /// A malformed or out-of-range field.
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::Invalid(m.into())
    }

    /// A request that cannot run as asked.
    pub fn precondition(m: impl Into<String>) -> Self {
        Self::Precondition(m.into())
    }

    /// An access rule's refusal.
    pub fn denied(m: impl Into<String>) -> Self {
        Self::Denied(m.into())
    }

    /// Something named that does not exist.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::NotFound(m.into())
    }

    /// Something it would create that exists already.
    pub fn exists(m: impl Into<String>) -> Self {
        Self::Exists(m.into())
    }

    /// The store or another part of the node failed.
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::Unavailable(m.into())
    }

    /// A fault of the node itself.
    pub fn internal(m: impl Into<String>) -> Self {
        Self::Internal(m.into())
    }

    /// The same error with `what: ` before its message (the code kept).
    pub fn about(self, what: &str) -> Self {
        match self {
            Self::Invalid(m) => Self::Invalid(format!("{what}: {m}")),
            Self::Precondition(m) => Self::Precondition(format!("{what}: {m}")),
            Self::Denied(m) => Self::Denied(format!("{what}: {m}")),
            Self::NotFound(m) => Self::NotFound(format!("{what}: {m}")),
            Self::Exists(m) => Self::Exists(format!("{what}: {m}")),
            Self::Governed(s) => {
                Self::Governed(Status::new(s.code(), format!("{what}: {}", s.message())))
            }
            Self::Exhausted(m) => Self::Exhausted(format!("{what}: {m}")),
            Self::Unavailable(m) => Self::Unavailable(format!("{what}: {m}")),
            Self::Later(m, after) => Self::Later(format!("{what}: {m}"), after),
            Self::Internal(m) => Self::Internal(format!("{what}: {m}")),
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(m)
            | Self::Precondition(m)
            | Self::Denied(m)
            | Self::NotFound(m)
            | Self::Exists(m)
            | Self::Exhausted(m)
            | Self::Unavailable(m)
            | Self::Later(m, _)
            | Self::Internal(m) => f.write_str(m),
            Self::Governed(s) => f.write_str(s.message()),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::Invalid(m) => Status::invalid_argument(m),
            ServiceError::Precondition(m) => Status::failed_precondition(m),
            ServiceError::Denied(m) => Status::permission_denied(m),
            ServiceError::NotFound(m) => Status::not_found(m),
            ServiceError::Exists(m) => Status::already_exists(m),
            ServiceError::Governed(s) => s,
            ServiceError::Exhausted(m) => Status::resource_exhausted(m),
            ServiceError::Unavailable(m) => Status::unavailable(m),
            ServiceError::Later(m, after) => {
                let ms = after.as_millis().max(1) as u64;
                let mut s = Status::unavailable(format!("{m}; retry after {ms} ms"));
                if let Ok(v) = ms.to_string().parse() {
                    s.metadata_mut().insert(crate::limits::RETRY_AFTER_MS, v);
                }
                s
            }
            ServiceError::Internal(m) => Status::internal(m),
        }
    }
}

impl From<Status> for ServiceError {
    fn from(s: Status) -> Self {
        Self::Governed(s)
    }
}

impl From<crate::spool::Stop> for ServiceError {
    fn from(s: crate::spool::Stop) -> Self {
        use crate::spool::Stop;
        match &s {
            Stop::Full(_) | Stop::TooLarge(_) => Self::Exhausted(s.to_string()),
            Stop::Gone(_) | Stop::Broken(_) => Self::Unavailable(s.to_string()),
        }
    }
}

impl From<nadc_store::StoreError> for ServiceError {
    fn from(e: nadc_store::StoreError) -> Self {
        Self::Unavailable(format!("store unavailable: {e}"))
    }
}

impl From<QueryError> for ServiceError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(m) => Self::Invalid(m),
            QueryError::TooBroad(m) => Self::Precondition(format!("search too broad: {m}")),
            QueryError::Store(e) => Self::Unavailable(format!("search failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_code_and_governed_statuses_pass_unchanged() {
        let code = |e: ServiceError| Status::from(e).code();
        assert_eq!(
            code(ServiceError::invalid("x")),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            code(ServiceError::precondition("x")),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            code(ServiceError::denied("x")),
            tonic::Code::PermissionDenied
        );
        let busy = Status::resource_exhausted("node busy");
        assert_eq!(code(busy.into()), tonic::Code::ResourceExhausted);
        assert_eq!(code(ServiceError::exists("x")), tonic::Code::AlreadyExists);
        let full = crate::spool::Stop::Full(1);
        assert_eq!(code(full.into()), tonic::Code::ResourceExhausted);
        let e = ServiceError::invalid("bad").about("areas[0]");
        assert_eq!(Status::from(e).message(), "areas[0]: bad");
    }
}
