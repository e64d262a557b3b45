//! Authorization policies: checks on verified claims that answer **403** `insufficient_scope`
//! (RFC 6750 §3.1) instead of 401 — allowed subjects, Kubernetes namespaces or service accounts,
//! required scopes, or any closure over your claims type.
//!
//! The way that cannot be wired wrong: give the policy to the bearer layer, which types it by the
//! layer's claims type and runs it right after verification.
//!
//! ```
//! use axum::{Router, routing::get};
//! use oidc_bearer::policy;
//! use oidc_bearer::{BearerAuthLayer, ConfigError, Verifier};
//!
//! let verifier = Verifier::new("https://issuer.example", "my-service")?;
//! let app: Router = Router::new()
//!     .route("/admin", get(|| async { "admin" }))
//!     .route_layer(BearerAuthLayer::new(verifier).authorize(policy::scopes(["admin"])));
//! # Ok::<(), oidc_bearer::ConfigError>(())
//! ```
//!
//! A policy of its own per route, behind a bearer layer shared by many routes, is an
//! [`AuthorizeLayer`]. With axum's `route_layer` the layer added last runs first, so add the policy
//! before the bearer layer. A policy that finds no claims of its type although a bearer layer ran
//! (another claims type, or the wrong order) is a programmer error: it answers **500** and logs at
//! ERROR what to change — never a 401 that would blame the client.
//!
//! # Custom claims
//!
//! The built-in policies read [`PolicyClaims`]. The common case needs no code: your own claims in a
//! struct, carried by [`DefaultClaims<YourClaims>`](DefaultClaims), which holds the registered
//! claims, the scopes and the Kubernetes claims that the policies read:
//!
//! ```
//! use oidc_bearer::claims::DefaultClaims;
//! use oidc_bearer::policy;
//! use oidc_bearer::{BearerAuthLayer, Claims, ConfigError, Verifier};
//!
//! #[derive(serde::Deserialize)]
//! struct Profile {
//!     email: Option<String>,
//! }
//!
//! async fn me(Claims(c): Claims<DefaultClaims<Profile>>) -> String {
//!     c.extra.email.clone().unwrap_or_default()
//! }
//!
//! let verifier = Verifier::new("https://issuer.example", "my-service")?;
//! let layer = BearerAuthLayer::new(verifier)
//!     .claims::<DefaultClaims<Profile>>()
//!     .authorize(policy::scopes(["read"]));
//! # Ok::<(), oidc_bearer::ConfigError>(())
//! ```
//!
//! A claims type of your own implements the trait. Its methods are required (except the service
//! account, which has one rule for every type), so a claims type that forgets its scopes is a
//! compile error, not a policy that silently refuses every token:
//!
//! ```
//! use oidc_bearer::claims::RegisteredClaims;
//! use oidc_bearer::policy::{self, PolicyClaims};
//! use oidc_bearer::{BearerAuthLayer, ConfigError, Verifier};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct MyClaims {
//!     #[serde(flatten)]
//!     registered: RegisteredClaims,
//!     #[serde(default)]
//!     scope: String,
//! }
//!
//! impl PolicyClaims for MyClaims {
//!     fn issuer(&self) -> Option<&str> { Some(&self.registered.iss) }
//!     fn subject(&self) -> Option<&str> { self.registered.subject() }
//!     // RFC 6749 §3.3: a space-separated list (scope tokens hold no whitespace).
//!     fn scopes(&self) -> Vec<&str> { self.scope.split_whitespace().collect() }
//! }
//!
//! let verifier = Verifier::new("https://issuer.example", "my-service")?;
//! let layer = BearerAuthLayer::new(verifier).claims::<MyClaims>().authorize(policy::scopes(["read"]));
//! # Ok::<(), oidc_bearer::ConfigError>(())
//! ```
//!
//! # Many issuers
//!
//! Unscoped, a built-in policy accepts a matching token from **every** issuer the verifier trusts:
//! with an `IssuerRegistry` (crate `oidc-bearer-registry`) that trusts every GKE cluster of a project,
//! `namespaces(["prod"])` accepts a token from a dev cluster where anyone may create a `prod`
//! namespace. Bind it to the issuer the names belong to with [`Rule::for_issuer`], or to a registry
//! pattern with [`Rule::for_issuers_matching`].
//!
//! The tutorial's `AuthorizedSubjects` check called `forbid(w)` and forgot to `return`, so the private
//! handler still ran. Here a refusal is the response: the inner service is never called.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use crate::claims::kubernetes::{KubernetesClaims, checked_service_account, named_service_account};
use crate::claims::{DefaultClaims, RegisteredClaims};
use crate::issuers::IssuerPattern;
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

/// What the built-in policies read from a claims type. Implemented by [`DefaultClaims`] (whatever
/// your claims in it), [`KubernetesClaims`] and `oidc_bearer_kubernetes::TokenReviewClaims`;
/// implement it for a claims type of your own to use the built-in policies with it.
///
/// `issuer`, `subject` and `scopes` are required on purpose: a default of "no scopes" once made
/// [`scopes`] refuse every token of a custom type without a word. A type that has no scopes says so
/// with `Vec::new()`, where a reader sees it. Only the service account has a default, because its
/// rule is the same for every type ([`kubernetes_service_account`](Self::kubernetes_service_account)).
pub trait PolicyClaims {
    /// The issuer that vouched for the claims (`iss`), read by issuer-scoped policies; `None`
    /// makes every issuer-scoped policy refuse.
    fn issuer(&self) -> Option<&str>;

    /// The `sub` claim.
    fn subject(&self) -> Option<&str>;

    /// The granted scopes: the space-separated `scope` claim (RFC 8693 §4.2, RFC 9068 §2.2.3) or the
    /// `scp` array.
    fn scopes(&self) -> Vec<&str>;

    /// The Kubernetes service account `(namespace, name)` the token names: by default its `sub`
    /// alone (`system:serviceaccount:<namespace>:<name>`). Types that carry the `kubernetes.io`
    /// claims check them against `sub` (see
    /// [`KubernetesClaims::service_account`]).
    fn kubernetes_service_account(&self) -> Option<(&str, &str)> {
        named_service_account(self.subject(), [None, None])
    }
}

impl PolicyClaims for RegisteredClaims {
    fn issuer(&self) -> Option<&str> {
        Some(&self.iss)
    }

    fn subject(&self) -> Option<&str> {
        self.sub.as_deref()
    }

    /// The registered claims hold no scopes.
    fn scopes(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// The scopes of `scope`, else of `scp`; the service account of the Kubernetes claims, under the
/// one rule of [`KubernetesClaims::service_account`]. Whatever `E` holds.
impl<E> PolicyClaims for DefaultClaims<E> {
    fn issuer(&self) -> Option<&str> {
        Some(&self.registered.iss)
    }

    fn subject(&self) -> Option<&str> {
        self.registered.sub.as_deref()
    }

    fn scopes(&self) -> Vec<&str> {
        self.scope
            .as_ref()
            .or(self.scp.as_ref())
            .map_or_else(Vec::new, |scope| scope.iter().collect())
    }

    fn kubernetes_service_account(&self) -> Option<(&str, &str)> {
        checked_service_account(
            self.registered.sub.as_deref(),
            self.kubernetes.as_ref(),
            &self.kubernetes_legacy,
        )
        .map(|sa| (sa.namespace, sa.name))
    }
}

/// The service account of [`KubernetesClaims::service_account`], so a token whose `sub` and
/// `kubernetes.io` claim disagree names no service account and is refused by [`namespaces`] and
/// [`service_accounts`].
impl PolicyClaims for KubernetesClaims {
    fn issuer(&self) -> Option<&str> {
        Some(&self.registered.iss)
    }

    fn subject(&self) -> Option<&str> {
        self.registered.sub.as_deref()
    }

    /// Kubernetes service-account tokens carry no scopes.
    fn scopes(&self) -> Vec<&str> {
        Vec::new()
    }

    fn kubernetes_service_account(&self) -> Option<(&str, &str)> {
        self.service_account().map(|sa| (sa.namespace, sa.name))
    }
}

/// Which issuers an issuer-scoped policy accepts.
#[derive(Clone)]
enum IssuerScope {
    Exact(Arc<HashSet<String>>),
    Pattern(Arc<dyn IssuerPattern>),
}

impl IssuerScope {
    fn allows(&self, issuer: &str) -> bool {
        match self {
            Self::Exact(issuers) => issuers.contains(issuer),
            // The pattern that made the registry trust the issuer: strict, cheap, never fetching
            // (the `IssuerPattern` contract).
            Self::Pattern(pattern) => pattern.verifier_for(issuer).is_some(),
        }
    }
}

impl fmt::Debug for IssuerScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(issuers) => f.debug_tuple("Exact").field(issuers).finish(),
            Self::Pattern(_) => f.write_str("Pattern(..)"),
        }
    }
}

/// A built-in policy, made by [`subjects`], [`namespaces`], [`service_accounts`] or [`scopes`].
/// It reads any [`PolicyClaims`] type.
///
/// Unscoped, it accepts a matching token of every issuer the verifier trusts: bind it to the
/// issuers the names belong to with [`for_issuer`](Self::for_issuer) or
/// [`for_issuers_matching`](Self::for_issuers_matching) (see the [module docs](self#many-issuers)).
#[derive(Debug, Clone)]
pub struct Rule {
    check: Check,
    /// Each binding must allow the token's issuer; empty: every issuer.
    issuers: Vec<IssuerScope>,
}

/// What a [`Rule`] checks once the issuer is allowed.
#[derive(Debug, Clone)]
enum Check {
    Subjects(Arc<HashSet<String>>),
    Namespaces(Arc<HashSet<String>>),
    /// `namespace/name`.
    ServiceAccounts(Arc<HashSet<String>>),
    /// Every one is required.
    Scopes(Arc<Vec<String>>),
}

impl Rule {
    fn new(check: Check) -> Self {
        Self {
            check,
            issuers: Vec::new(),
        }
    }

    /// This policy for tokens of these issuers only (exact `iss` values); others are refused.
    #[must_use]
    pub fn for_issuer<I: IntoIterator<Item = S>, S: Into<String>>(mut self, issuers: I) -> Self {
        self.issuers.push(IssuerScope::Exact(set(issuers)));
        self
    }

    /// This policy for tokens of the issuers a registry pattern trusts (the pattern given to
    /// `IssuerRegistryBuilder::with_pattern` (crate `oidc-bearer-registry`));
    /// others are refused.
    #[must_use]
    pub fn for_issuers_matching(mut self, pattern: impl IssuerPattern) -> Self {
        self.issuers.push(IssuerScope::Pattern(Arc::new(pattern)));
        self
    }
}

impl<T: PolicyClaims> Policy<T> for Rule {
    fn check(&self, claims: &T) -> Result<(), Denied> {
        if !self.issuers.is_empty() {
            match claims.issuer() {
                Some(issuer) if self.issuers.iter().all(|scope| scope.allows(issuer)) => {}
                _ => return Err(Denied::new("the token's issuer is not allowed here")),
            }
        }
        match &self.check {
            Check::Subjects(allowed) => match claims.subject() {
                Some(sub) if allowed.contains(sub) => Ok(()),
                _ => Err(Denied::new("the token's subject is not allowed here")),
            },
            Check::Namespaces(allowed) => match claims.kubernetes_service_account() {
                Some((ns, _)) if allowed.contains(ns) => Ok(()),
                _ => Err(Denied::new(
                    "the token's Kubernetes namespace is not allowed here",
                )),
            },
            Check::ServiceAccounts(allowed) => match claims.kubernetes_service_account() {
                Some((ns, name)) if allowed.contains(&format!("{ns}/{name}")) => Ok(()),
                _ => Err(Denied::new(
                    "the token's Kubernetes service account is not allowed here",
                )),
            },
            Check::Scopes(required) => {
                let granted = claims.scopes();
                if required.iter().all(|s| granted.contains(&s.as_str())) {
                    Ok(())
                } else {
                    Err(Denied::new("the token lacks a required scope")
                        .with_scope(required.join(" ")))
                }
            }
        }
    }
}

/// Allows only these subjects (`sub`).
pub fn subjects<I: IntoIterator<Item = S>, S: Into<String>>(subjects: I) -> Rule {
    Rule::new(Check::Subjects(set(subjects)))
}

/// Allows only service accounts of these Kubernetes namespaces.
pub fn namespaces<I: IntoIterator<Item = S>, S: Into<String>>(namespaces: I) -> Rule {
    Rule::new(Check::Namespaces(set(namespaces)))
}

/// Allows only these Kubernetes service accounts, each as `namespace/name`.
pub fn service_accounts<I: IntoIterator<Item = S>, S: Into<String>>(accounts: I) -> Rule {
    Rule::new(Check::ServiceAccounts(set(accounts)))
}

/// Requires every one of these scopes (`scope` string or `scp` array).
pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Rule {
    Rule::new(Check::Scopes(Arc::new(
        scopes.into_iter().map(Into::into).collect(),
    )))
}

pub(crate) fn set<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Arc<HashSet<String>> {
    Arc::new(items.into_iter().map(Into::into).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::kubernetes::fixtures::{bound, claims as k8s, legacy};
    use serde_json::json;

    fn claims(json: serde_json::Value) -> DefaultClaims {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn issuer_scoped_policies_refuse_other_issuers() {
        let prod_of = |iss: &str| {
            claims(json!({
                "iss": iss, "sub": "system:serviceaccount:prod:billing", "scope": "admin",
                "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "billing", "uid": "u"}}
            }))
        };
        let prod_cluster =
            "https://container.googleapis.com/v1/projects/p/locations/l/clusters/prod";
        let dev_cluster = "https://container.googleapis.com/v1/projects/p/locations/l/clusters/dev";
        let (from_prod, from_dev) = (prod_of(prod_cluster), prod_of(dev_cluster));
        // Unscoped: a `prod` namespace of any trusted cluster.
        assert!(namespaces(["prod"]).check(&from_dev).is_ok());

        let exact = namespaces(["prod"]).for_issuer([prod_cluster]);
        let pattern = scopes(["admin"]).for_issuers_matching(|iss: &str| {
            iss.ends_with("/clusters/prod")
                .then(|| crate::Verifier::builder(iss, "aud"))
        });
        assert!(exact.check(&from_prod).is_ok());
        assert!(pattern.check(&from_prod).is_ok());
        for (name, denied) in [
            ("exact", exact.check(&from_dev)),
            ("pattern", pattern.check(&from_dev)),
        ] {
            assert_eq!(
                denied,
                Err(Denied::new("the token's issuer is not allowed here")),
                "{name}"
            );
        }
        // The inner policy still applies to the allowed issuer.
        assert!(
            subjects(["alice"])
                .for_issuer([prod_cluster])
                .check(&from_prod)
                .is_err()
        );
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
        // IdentityServer writes `scope` as an array, Azure AD `scp` as a string.
        let scope_list = claims(serde_json::json!({"iss": "i", "scope": ["read", "write"]}));
        let scp_string = claims(serde_json::json!({"iss": "i", "scp": "read write"}));
        let ns = namespaces(["prod"]);
        let sa = service_accounts(["prod/billing"]);
        let subjects = subjects(["system:serviceaccount:prod:billing"]);
        let read = scopes(["read"]);
        let admin = scopes(["read", "admin"]);
        assert!(ns.check(&bound).is_ok());
        assert!(sa.check(&bound).is_ok());
        assert!(subjects.check(&bound).is_ok());
        assert!(read.check(&bound).is_ok());
        assert!(read.check(&scp).is_ok());
        assert!(read.check(&scope_list).is_ok());
        assert!(read.check(&scp_string).is_ok());
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

    #[tokio::test]
    async fn policies_read_the_checked_service_account() {
        use std::convert::Infallible;
        use std::sync::Arc;

        use tower::{Layer as _, ServiceExt as _, service_fn};

        use crate::layer::Claims;

        let mut dev = bound("system:serviceaccount:dev:billing");
        dev["kubernetes.io"]["namespace"] = json!("dev");
        let rows = [
            (
                "bound, allowed namespace",
                bound("system:serviceaccount:prod:billing"),
                Some(("prod", "billing")),
                200,
            ),
            (
                "legacy, allowed namespace",
                legacy("system:serviceaccount:prod:billing"),
                Some(("prod", "billing")),
                200,
            ),
            ("bound, other namespace", dev, Some(("dev", "billing")), 403),
            (
                "sub claims the allowed namespace, kubernetes.io another",
                {
                    let mut v = bound("system:serviceaccount:prod:billing");
                    v["kubernetes.io"]["namespace"] = json!("dev");
                    v
                },
                None,
                403,
            ),
            (
                "not a service account",
                bound("system:node:node-1"),
                None,
                403,
            ),
        ];
        for (name, value, expected, status) in rows {
            let claims = k8s(value);
            assert_eq!(
                PolicyClaims::subject(&claims),
                claims.registered.sub.as_deref(),
                "{name}"
            );
            assert_eq!(claims.kubernetes_service_account(), expected, "{name}");

            let service = AuthorizeLayer::new(namespaces(["prod"]))
                .claims::<KubernetesClaims>()
                .layer(service_fn(|_: http::Request<String>| async {
                    Ok::<_, Infallible>(http::Response::new(String::new()))
                }));
            let mut request = http::Request::new(String::new());
            request.extensions_mut().insert(Claims(Arc::new(claims)));
            let response = service.oneshot(request).await.unwrap();
            assert_eq!(response.status(), status, "{name}");
        }
    }
}
