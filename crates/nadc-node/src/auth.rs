//! Who is calling: the principal read from the verified client certificate,
//! once per request, by [`AuthLayer`] in front of every service.
//!
//! The TLS layer has already verified the certificate chain against the
//! node's CA; here the principal URI in it decides what the caller may do.
//! Nothing in a request payload can change who the caller is. The same
//! layer applies the RPC's gate from [`crate::rules`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use nadc_core::{ForceId, Principal, Role};
use tonic::codegen::http;
use tracing::warn;

use crate::governance::{Actor, Audited, Governance};
use crate::rules;
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

/// Gives `to` (a request the node makes of its own services on behalf of
/// `from`'s caller, e.g. an analysis made of searches) the caller `from`
/// was authenticated as: the same identity, never a new one.
pub(crate) fn carry_caller<T, U>(from: &Request<T>, to: &mut Request<U>) {
    if let Some(a) = from.extensions().get::<Authenticated>() {
        to.extensions_mut().insert(a.clone());
    }
}

/// The tower layer in front of every service: it reads the principal once
/// per request from the connection's verified client certificate, puts it
/// in the request's extensions, and lets the request through only if the
/// RPC has a row in [`crate::rules::RULES`] whose gate the caller passes;
/// a caller refused at the gate is audited under the row's action.
#[derive(Clone)]
pub struct AuthLayer {
    governance: Arc<Governance>,
}

impl AuthLayer {
    /// The layer, checking gates under `governance`'s policy and auditing
    /// refusals in its log.
    pub fn new(governance: Arc<Governance>) -> Self {
        Self { governance }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            governance: self.governance.clone(),
        }
    }
}

/// [`AuthLayer`]'s service.
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    governance: Arc<Governance>,
}

type Answer<R, E> = Pin<Box<dyn Future<Output = Result<http::Response<R>, E>> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Authenticate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Answer<R, S::Error>;

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
        let path = req.uri().path();
        let Some(rule) = rules::rule_for(path) else {
            let refused = rules::unruled(path);
            warn!(path = %refused.message(), "request for an RPC with no access rule refused");
            return Box::pin(async move { Ok(refused.into_http()) });
        };
        let principal = match &found {
            Ok(p) => p.clone(),
            Err(e) => {
                let refused = Status::from(e);
                return Box::pin(async move { Ok(refused.into_http()) });
            }
        };
        if let Err(refused) = rule.admit(&principal, &self.governance.policy) {
            let g = self.governance.clone();
            return Box::pin(async move {
                let actor = Actor::of(&principal);
                let refused = g
                    .refuse(&actor, rule.action, &Audited::default(), refused)
                    .await;
                Ok(refused.into_http())
            });
        }
        req.extensions_mut().insert(Authenticated(found));
        Box::pin(self.inner.call(req))
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
