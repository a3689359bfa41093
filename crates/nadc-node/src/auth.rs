//! Who is calling: the principal read from the verified client certificate.
//!
//! The TLS layer has already verified the certificate chain against the
//! node's CA; here the principal URI in it decides what the caller may do.
//! Nothing in a request payload can change who the caller is.

use nadc_core::{ForceId, Principal, Role};
use tonic::{Request, Status};

/// The authenticated caller of an RPC.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who it is.
    pub principal: Principal,
}

/// Reads the caller's principal from the request's TLS peer certificate.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("no client certificate presented"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate presented"))?;
    let principal = nadc_pki::principal_from_der(leaf.as_ref()).map_err(|e| {
        Status::permission_denied(format!(
            "client certificate has no usable nadc identity: {e}"
        ))
    })?;
    Ok(Caller { principal })
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
