//! Authorization policies: checks on verified claims that answer **403** `insufficient_scope`
//! (RFC 6750 §3.1) instead of 401 — allowed subjects, Kubernetes namespaces or service accounts,
//! required scopes, or any closure over your claims type.
//!
//! A policy runs after [`BearerAuthLayer`](crate::BearerAuthLayer) and reads the [`Claims<T>`] it put
//! into the request. Attach it per route; with axum's `route_layer`, the layer added last runs first,
//! so add the policy before the bearer layer:
//!
//! ```
//! use axum::{Router, routing::get};
//! use oidc_bearer::{BearerAuthLayer, Verifier, policy::AuthorizeLayer};
//!
//! let verifier = Verifier::new("https://issuer.example", "my-service").unwrap();
//! let app: Router = Router::new()
//!     .route("/admin", get(|| async { "admin" }))
//!     .route_layer(AuthorizeLayer::subjects(["system:serviceaccount:ops:deployer"]))
//!     .route_layer(BearerAuthLayer::new(verifier));
//! ```
//!
//! The tutorial's `AuthorizedSubjects` check called `forbid(w)` and forgot to `return`, so the private
//! handler still ran. Here a refusal is the response: the inner service is never called.

use std::collections::HashSet;
use std::sync::Arc;

use crate::claims::DefaultClaims;
use crate::rejection::AuthRejection;

mod layer;

pub use layer::{Authorize, AuthorizeFuture, AuthorizeLayer};

/// A policy's refusal: what it requires, said without repeating the token's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    reason: String,
    scope: Option<String>,
}

impl Denied {
    /// A refusal with this description (sent to the client as `error_description`).
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            scope: None,
        }
    }

    /// Names the scope that would be sufficient (the `scope` attribute of the challenge).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    pub(crate) fn into_rejection(self) -> AuthRejection {
        AuthRejection::Forbidden {
            reason: self.reason,
            scope: self.scope,
        }
    }
}

/// A check on verified claims of type `T`. Closures `Fn(&T) -> Result<(), Denied>` implement it.
pub trait Policy<T>: Clone + Send + Sync + 'static {
    /// Allows or refuses the request.
    fn check(&self, claims: &T) -> Result<(), Denied>;
}

impl<T, F> Policy<T> for F
where
    F: Fn(&T) -> Result<(), Denied> + Clone + Send + Sync + 'static,
{
    fn check(&self, claims: &T) -> Result<(), Denied> {
        self(claims)
    }
}

/// What the built-in policies read from a claims type. Implemented by
/// [`DefaultClaims`] (from the payload's claims) and the Kubernetes claim types; implement it for
/// your own type to use the built-in policies with it.
pub trait PolicyClaims {
    /// The `sub` claim.
    fn subject(&self) -> Option<&str>;

    /// The granted scopes: the space-separated `scope` claim (RFC 8693 §4.2, RFC 9068 §2.2.3) or the
    /// `scp` array.
    fn scopes(&self) -> Vec<&str> {
        Vec::new()
    }

    /// The Kubernetes service account `(namespace, name)` the token was issued to.
    fn kubernetes_service_account(&self) -> Option<(&str, &str)> {
        self.subject().and_then(parse_service_account_subject)
    }
}

/// Parses `system:serviceaccount:<namespace>:<name>`.
pub fn parse_service_account_subject(sub: &str) -> Option<(&str, &str)> {
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

impl PolicyClaims for DefaultClaims {
    fn subject(&self) -> Option<&str> {
        self.registered.sub.as_deref()
    }

    fn scopes(&self) -> Vec<&str> {
        match (self.extra.get("scope"), self.extra.get("scp")) {
            (Some(serde_json::Value::String(s)), _) => {
                s.split(' ').filter(|s| !s.is_empty()).collect()
            }
            (_, Some(serde_json::Value::Array(a))) => a.iter().filter_map(|v| v.as_str()).collect(),
            (_, Some(serde_json::Value::String(s))) => {
                s.split(' ').filter(|s| !s.is_empty()).collect()
            }
            _ => Vec::new(),
        }
    }

    fn kubernetes_service_account(&self) -> Option<(&str, &str)> {
        // The nested `kubernetes.io` object of bound tokens must agree with `sub`.
        let from_sub = PolicyClaims::subject(self).and_then(parse_service_account_subject)?;
        let k8s = self.extra.get("kubernetes.io");
        match k8s {
            Some(k8s) => {
                let ns = k8s.get("namespace").and_then(|v| v.as_str());
                let name = k8s
                    .get("serviceaccount")
                    .and_then(|sa| sa.get("name"))
                    .and_then(|v| v.as_str());
                (ns == Some(from_sub.0) && name == Some(from_sub.1)).then_some(from_sub)
            }
            None => Some(from_sub),
        }
    }
}

/// Allows only these subjects (`sub`).
#[derive(Debug, Clone)]
pub struct Subjects(Arc<HashSet<String>>);

impl<T: PolicyClaims> Policy<T> for Subjects {
    fn check(&self, claims: &T) -> Result<(), Denied> {
        match claims.subject() {
            Some(sub) if self.0.contains(sub) => Ok(()),
            _ => Err(Denied::new("the token's subject is not allowed here")),
        }
    }
}

/// Allows only service accounts of these Kubernetes namespaces.
#[derive(Debug, Clone)]
pub struct Namespaces(Arc<HashSet<String>>);

impl<T: PolicyClaims> Policy<T> for Namespaces {
    fn check(&self, claims: &T) -> Result<(), Denied> {
        match claims.kubernetes_service_account() {
            Some((ns, _)) if self.0.contains(ns) => Ok(()),
            _ => Err(Denied::new(
                "the token's Kubernetes namespace is not allowed here",
            )),
        }
    }
}

/// Allows only these Kubernetes service accounts, as `namespace/name`.
#[derive(Debug, Clone)]
pub struct ServiceAccounts(Arc<HashSet<String>>);

impl<T: PolicyClaims> Policy<T> for ServiceAccounts {
    fn check(&self, claims: &T) -> Result<(), Denied> {
        match claims.kubernetes_service_account() {
            Some((ns, name)) if self.0.contains(&format!("{ns}/{name}")) => Ok(()),
            _ => Err(Denied::new(
                "the token's Kubernetes service account is not allowed here",
            )),
        }
    }
}

/// Requires every one of these scopes.
#[derive(Debug, Clone)]
pub struct Scopes(Arc<Vec<String>>);

impl<T: PolicyClaims> Policy<T> for Scopes {
    fn check(&self, claims: &T) -> Result<(), Denied> {
        let granted = claims.scopes();
        if self.0.iter().all(|s| granted.contains(&s.as_str())) {
            Ok(())
        } else {
            Err(Denied::new("the token lacks a required scope").with_scope(self.0.join(" ")))
        }
    }
}

pub(crate) fn set<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Arc<HashSet<String>> {
    Arc::new(items.into_iter().map(Into::into).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> DefaultClaims {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn service_account_subject_parsing() {
        let rows = [
            (
                "system:serviceaccount:prod:billing",
                Some(("prod", "billing")),
            ),
            ("system:serviceaccount:prod:", None),
            ("system:serviceaccount::billing", None),
            ("system:serviceaccount:a:b:c", None),
            ("alice", None),
        ];
        for (sub, expected) in rows {
            assert_eq!(parse_service_account_subject(sub), expected, "{sub}");
        }
    }

    #[test]
    fn built_in_policies_table() {
        let bound = claims(serde_json::json!({
            "iss": "i", "sub": "system:serviceaccount:prod:billing", "scope": "read write",
            "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "billing", "uid": "u"}}
        }));
        let forged_sub = claims(serde_json::json!({
            "iss": "i", "sub": "system:serviceaccount:prod:billing",
            "kubernetes.io": {"namespace": "dev", "serviceaccount": {"name": "billing", "uid": "u"}}
        }));
        let scp = claims(serde_json::json!({"iss": "i", "sub": "x", "scp": ["read"]}));
        let ns = Namespaces(set(["prod"]));
        let sa = ServiceAccounts(set(["prod/billing"]));
        let subjects = Subjects(set(["system:serviceaccount:prod:billing"]));
        let read = Scopes(Arc::new(vec!["read".into()]));
        let admin = Scopes(Arc::new(vec!["read".into(), "admin".into()]));
        assert!(ns.check(&bound).is_ok());
        assert!(sa.check(&bound).is_ok());
        assert!(subjects.check(&bound).is_ok());
        assert!(read.check(&bound).is_ok());
        assert!(read.check(&scp).is_ok());
        assert_eq!(
            admin.check(&bound).unwrap_err().scope.as_deref(),
            Some("read admin")
        );
        assert!(
            ns.check(&forged_sub).is_err(),
            "sub and kubernetes.io disagree"
        );
        assert!(ns.check(&scp).is_err());
        assert!(subjects.check(&scp).is_err());
    }
}
