//! Who is calling: the principal read from the verified client certificate,
//! once per request, by [`AuthLayer`] in front of every service.
//!
//! The TLS layer has already verified the certificate chain against the
//! node's CA; here the principal URI in it decides what the caller may do.
//! Nothing in a request payload can change who the caller is.

use nadc_core::{ForceId, Principal, Role};
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Status};

/// The authenticated caller of an RPC.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who it is.
    pub principal: Principal,
}

/// The caller as [`AuthLayer`] read it from the connection's verified
/// client certificate, in every request's extensions: the principal, or why
/// there is none.
#[derive(Clone, Debug)]
struct Authenticated(Result<Principal, AuthError>);

/// Why a request has no usable caller.
#[derive(Clone, Debug, thiserror::Error)]
enum AuthError {
    #[error("no client certificate presented")]
    NoCertificate,
    #[error("client certificate has no usable nadc identity: {0}")]
    NoIdentity(String),
}

impl From<&AuthError> for Status {
    fn from(e: &AuthError) -> Status {
        match e {
            AuthError::NoCertificate => Status::unauthenticated(e.to_string()),
            AuthError::NoIdentity(_) => Status::permission_denied(e.to_string()),
        }
    }
}

/// Reads the principal from a connection's TLS peer certificates.
fn principal_of(
    certs: Option<&[rustls_pki_types::CertificateDer<'static>]>,
) -> Result<Principal, AuthError> {
    let leaf = certs
        .and_then(|c| c.first())
        .ok_or(AuthError::NoCertificate)?;
    nadc_pki::principal_from_der(leaf.as_ref()).map_err(|e| AuthError::NoIdentity(e.to_string()))
}

/// The caller of an RPC: as [`AuthLayer`] put it in the request (every RPC
/// the node serves passes that layer), read from the verified client
/// certificate and never from the payload.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    match req.extensions().get::<Authenticated>() {
        Some(Authenticated(Ok(principal))) => Ok(Caller {
            principal: principal.clone(),
        }),
        Some(Authenticated(Err(e))) => Err(Status::from(e)),
        // A service reached without the layer is a wiring mistake: refuse
        // rather than guess.
        None => Err(Status::internal(
            "the request did not pass the node's authentication layer",
        )),
    }
}

/// The tower layer that authenticates every request once, before any
/// service sees it: it reads the principal from the connection's verified
/// client certificate and puts it in the request's extensions.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuthLayer;

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authenticate { inner }
    }
}

/// [`AuthLayer`]'s service.
#[derive(Clone, Debug)]
pub struct Authenticate<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Authenticate<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let certs = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.peer_certs());
        let found = principal_of(certs.as_deref().map(Vec::as_slice));
        req.extensions_mut().insert(Authenticated(found));
        self.inner.call(req)
    }
}

impl Caller {
    /// The force of a BOF caller, or PERMISSION_DENIED naming who it is.
    pub fn require_bof(&self, action: &str) -> Result<&ForceId, Status> {
        match &self.principal {
            Principal::Bof { force } => Ok(force),
            other => Err(Status::permission_denied(format!(
                "{action} requires a force BOF certificate (nadc://bof/<FORCE>); caller is {other}"
            ))),
        }
    }

    /// A user holding a role that may search, or PERMISSION_DENIED.
    pub fn require_searcher(&self) -> Result<(&ForceId, &str, &[Role]), Status> {
        match &self.principal {
            Principal::User { force, name, roles } if roles.iter().any(|r| r.may_search()) => {
                Ok((force, name, roles))
            }
            Principal::User { name, roles, .. } => Err(Status::permission_denied(format!(
                "user {name} holds no searching role (has: {}); searching needs analyst, investigator, supervisor or disclosure",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            other => Err(Status::permission_denied(format!(
                "searching requires a user certificate with a searching role; caller is {other}"
            ))),
        }
    }
}
