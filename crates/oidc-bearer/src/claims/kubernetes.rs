//! Kubernetes service-account tokens: the nested `kubernetes.io` claim of bound (projected) tokens,
//! the flat `kubernetes.io/serviceaccount/*` claims of legacy secret-based tokens, and one accessor
//! for the service account whichever form a token has.
//!
//! ```
//! use oidc_bearer::claims::kubernetes::KubernetesClaims;
//!
//! let claims: KubernetesClaims = serde_json::from_str(r#"{
//!     "iss": "https://kubernetes.default.svc.cluster.local",
//!     "sub": "system:serviceaccount:prod:billing",
//!     "aud": ["my-service"],
//!     "exp": 2000000000,
//!     "kubernetes.io": {
//!         "namespace": "prod",
//!         "serviceaccount": {"name": "billing", "uid": "0b2f6c2e-8f4e-4a0e-9f1c-1c3a3f6f5d10"},
//!         "pod": {"name": "billing-7d4b9c8f6-x2k9q", "uid": "6e1a7d2c-4b1f-4c5e-8a3d-2f9b7c6d5e4a"}
//!     }
//! }"#).unwrap();
//! let sa = claims.service_account().unwrap();
//! assert_eq!((sa.namespace, sa.name), ("prod", "billing"));
//! assert_eq!(claims.kubernetes.unwrap().pod.unwrap().name, "billing-7d4b9c8f6-x2k9q");
//! ```
//!
//! Bound tokens (from the `TokenRequest` API, projected into pods) expire, name their audience and
//! are invalidated with the pod they are bound to; legacy tokens (stored in `Secret`s before
//! Kubernetes 1.24) never expire and have no audience. Verify the latter only through
//! `oidc_bearer_kubernetes::dangerous_legacy_service_account_verifier`.

use serde::{Deserialize, Serialize};

use super::{NumericDate, RegisteredClaims};

/// The prefix of a service account's user name, and of its tokens' `sub`
/// (`system:serviceaccount:<namespace>:<name>`).
const SERVICE_ACCOUNT_SUBJECT_PREFIX: &str = "system:serviceaccount:";

/// The claims of a Kubernetes service-account token, bound or legacy.
///
/// Exactly one of [`kubernetes`](Self::kubernetes) (bound tokens) and [`legacy`](Self::legacy)
/// (legacy tokens) is normally filled; use [`service_account`](Self::service_account) to read the
/// service account from either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KubernetesClaims {
    /// The registered claims.
    #[serde(flatten)]
    pub registered: RegisteredClaims,
    /// The `kubernetes.io` claim of a bound token.
    #[serde(
        rename = "kubernetes.io",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kubernetes: Option<KubernetesIo>,
    /// The flat claims of a legacy token (all `None` for a bound token).
    #[serde(flatten)]
    pub legacy: LegacyServiceAccountClaims,
}

/// The `kubernetes.io` claim of a bound service-account token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KubernetesIo {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to, if any (the token dies with the pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The secret the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The node the pod runs on (Kubernetes 1.30+), if the token is bound to a pod or a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    /// When the kubelet should have refreshed the token. Present on tokens whose lifetime the API
    /// server extended (`--service-account-extend-token-expiration`): a token used after this time is
    /// a stale one that a client failed to rotate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<NumericDate>,
}

/// A Kubernetes object a token names: its name and uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ObjectRef {
    /// The object's name.
    pub name: String,
    /// The object's uid (unique over the cluster's lifetime, unlike the name).
    pub uid: String,
}

/// The flat claims of a legacy, secret-based service-account token, each named
/// `kubernetes.io/serviceaccount/…`; an absent one is `None`, and is left out when serialized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LegacyServiceAccountClaims {
    /// `kubernetes.io/serviceaccount/namespace`.
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `kubernetes.io/serviceaccount/secret.name`: the `Secret` the token was stored in.
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// `kubernetes.io/serviceaccount/service-account.name`.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// `kubernetes.io/serviceaccount/service-account.uid`.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_uid: Option<String>,
}

/// A service account, as named by a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ServiceAccount<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The name.
    pub name: &'a str,
    /// The uid: tells a service account from an earlier one of the same name that was deleted.
    pub uid: &'a str,
}

impl<'a> ServiceAccount<'a> {
    /// The service account a Kubernetes user name names, `system:serviceaccount:<namespace>:<name>`
    /// (as a token's `sub` or a TokenReview's `status.user.username`), with its `uid`; `None` for
    /// any other user (users, nodes, malformed names).
    pub fn from_username(username: &'a str, uid: &'a str) -> Option<Self> {
        let (namespace, name) = parse_subject(username)?;
        Some(Self {
            namespace,
            name,
            uid,
        })
    }
}

impl KubernetesClaims {
    /// The service account the token belongs to, from the `kubernetes.io` claim of a bound token or
    /// the flat claims of a legacy one, checked against `sub`.
    ///
    /// `None` when the token names no service account, or when its claims disagree: `sub` must be
    /// exactly `system:serviceaccount:<namespace>:<name>` of the same account, and a token carrying
    /// both forms must name the same account (uid included) in both. The API server never issues such
    /// a token; one that disagrees with itself is not trusted to name anyone.
    pub fn service_account(&self) -> Option<ServiceAccount<'_>> {
        checked_service_account(
            self.registered.sub.as_deref(),
            self.kubernetes.as_ref(),
            &self.legacy,
        )
    }
}

impl KubernetesIo {
    /// The service account this claim names, unchecked against `sub` (what
    /// [`KubernetesClaims::service_account`] adds).
    pub(crate) fn service_account(&self) -> ServiceAccount<'_> {
        ServiceAccount {
            namespace: &self.namespace,
            name: &self.serviceaccount.name,
            uid: &self.serviceaccount.uid,
        }
    }
}

/// The service account named by a token's Kubernetes claims (either form), checked against `sub`
/// by [`named_service_account`]: the rule of [`KubernetesClaims::service_account`], for every
/// type that holds these claims.
pub(crate) fn checked_service_account<'a>(
    sub: Option<&'a str>,
    bound: Option<&'a KubernetesIo>,
    legacy: &'a LegacyServiceAccountClaims,
) -> Option<ServiceAccount<'a>> {
    let bound = bound.map(KubernetesIo::service_account);
    let legacy = legacy.service_account();
    let account = bound.or(legacy)?;
    named_service_account(sub, [bound, legacy])?;
    Some(account)
}

impl LegacyServiceAccountClaims {
    /// The service account, when namespace, name and uid are all present; unchecked against `sub`
    /// (what [`KubernetesClaims::service_account`] adds).
    pub(crate) fn service_account(&self) -> Option<ServiceAccount<'_>> {
        Some(ServiceAccount {
            namespace: self.namespace.as_deref()?,
            name: self.service_account_name.as_deref()?,
            uid: self.service_account_uid.as_deref()?,
        })
    }
}

/// Which service account a token names — the one rule behind [`KubernetesClaims::service_account`],
/// the built-in policies' [`PolicyClaims::kubernetes_service_account`](crate::policy::PolicyClaims::kubernetes_service_account)
/// for every claims type, and TokenReview answers.
///
/// `sub` must be exactly `system:serviceaccount:<namespace>:<name>` ([`parse_subject`]), and each
/// form of the Kubernetes claims the token carries (`forms`: the bound `kubernetes.io` object, the
/// legacy flat claims) must name that same account; two forms must also agree on the uid. The API
/// server never issues a token that disagrees with itself; one that does is not trusted to name
/// anyone. A token with neither form (a TokenReview user name, another issuer's subject) is named
/// by its `sub` alone.
pub(crate) fn named_service_account<'a>(
    sub: Option<&'a str>,
    forms: [Option<ServiceAccount<'a>>; 2],
) -> Option<(&'a str, &'a str)> {
    let (namespace, name) = parse_subject(sub?)?;
    if let [Some(a), Some(b)] = forms
        && a != b
    {
        return None;
    }
    forms
        .iter()
        .flatten()
        .all(|form| form.namespace == namespace && form.name == name)
        .then_some((namespace, name))
}

/// Splits a service account's user name, `system:serviceaccount:<namespace>:<name>`, into namespace
/// and name. `None` for any other subject (users, nodes, malformed names).
pub(crate) fn parse_subject(sub: &str) -> Option<(&str, &str)> {
    let rest = sub.strip_prefix(SERVICE_ACCOUNT_SUBJECT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    // Namespaces and service-account names are DNS names: never empty, never containing `:`.
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

#[cfg(test)]
impl ServiceAccount<'_> {
    /// The Kubernetes user name, `system:serviceaccount:<namespace>:<name>` (a token's `sub`).
    pub(crate) fn username(&self) -> String {
        format!(
            "{SERVICE_ACCOUNT_SUBJECT_PREFIX}{}:{}",
            self.namespace, self.name
        )
    }
}

/// Service-account token claims of both forms, for the tests of this module and of the policies.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::KubernetesClaims;
    use serde_json::json;

    /// `value` as [`KubernetesClaims`].
    pub(crate) fn claims(value: serde_json::Value) -> KubernetesClaims {
        serde_json::from_value(value).unwrap()
    }

    /// A projected (bound) token's claims for `prod/billing` (uid `u1`), with `sub` as given.
    pub(crate) fn bound(sub: &str) -> serde_json::Value {
        json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": sub,
            "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "billing", "uid": "u1"}}
        })
    }

    /// A legacy (secret-based) token's claims for `prod/billing` (uid `u1`), with `sub` as given.
    pub(crate) fn legacy(sub: &str) -> serde_json::Value {
        json!({
            "iss": "kubernetes/serviceaccount",
            "sub": sub,
            "kubernetes.io/serviceaccount/namespace": "prod",
            "kubernetes.io/serviceaccount/secret.name": "billing-token-x7k2p",
            "kubernetes.io/serviceaccount/service-account.name": "billing",
            "kubernetes.io/serviceaccount/service-account.uid": "u1"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{bound, claims, legacy};
    use super::*;
    use serde_json::json;

    #[test]
    fn service_account_is_checked_against_sub() {
        let ok = Some(("prod", "billing", "u1"));
        let rows = [
            ("bound", bound("system:serviceaccount:prod:billing"), ok),
            ("legacy", legacy("system:serviceaccount:prod:billing"), ok),
            (
                "bound, other name in sub",
                bound("system:serviceaccount:prod:admin"),
                None,
            ),
            (
                "bound, other namespace in sub",
                bound("system:serviceaccount:kube-system:billing"),
                None,
            ),
            (
                "legacy, sub mismatch",
                legacy("system:serviceaccount:prod:admin"),
                None,
            ),
            ("not a service account", bound("system:node:node-1"), None),
            (
                "no sub",
                {
                    let mut v = bound("x");
                    v.as_object_mut().unwrap().remove("sub");
                    v
                },
                None,
            ),
            (
                "neither form",
                json!({"iss": "x", "sub": "system:serviceaccount:prod:billing"}),
                None,
            ),
            (
                "both forms agree",
                {
                    let mut v = legacy("system:serviceaccount:prod:billing");
                    v["kubernetes.io"] = bound("")["kubernetes.io"].clone();
                    v
                },
                ok,
            ),
            (
                "both forms disagree",
                {
                    let mut v = legacy("system:serviceaccount:prod:billing");
                    v["kubernetes.io"] = bound("")["kubernetes.io"].clone();
                    v["kubernetes.io"]["serviceaccount"]["uid"] = json!("u2");
                    v
                },
                None,
            ),
            (
                "legacy without uid",
                {
                    let mut v = legacy("system:serviceaccount:prod:billing");
                    v.as_object_mut()
                        .unwrap()
                        .remove("kubernetes.io/serviceaccount/service-account.uid");
                    v
                },
                None,
            ),
        ];
        for (name, value, expected) in rows {
            let claims = claims(value);
            let got = claims
                .service_account()
                .map(|sa| (sa.namespace, sa.name, sa.uid));
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn legacy_claims_are_read_and_written_flat() {
        let value = legacy("system:serviceaccount:prod:billing");
        let parsed = claims(value.clone());
        assert!(parsed.legacy.namespace.is_some());
        assert!(parsed.kubernetes.is_none());
        assert_eq!(
            parsed.legacy.secret_name.as_deref(),
            Some("billing-token-x7k2p")
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), value);
        assert!(
            claims(bound("system:serviceaccount:prod:billing"))
                .legacy
                .namespace
                .is_none()
        );
    }

    #[test]
    fn subjects_are_parsed_strictly() {
        let rows = [
            (
                "system:serviceaccount:prod:billing",
                Some(("prod", "billing")),
            ),
            ("system:serviceaccount:prod:", None),
            ("system:serviceaccount::billing", None),
            ("system:serviceaccount:prod", None),
            ("system:serviceaccounts:prod:billing", None),
            ("System:serviceaccount:prod:billing", None),
            ("system:serviceaccount:prod:billing:x", None),
        ];
        for (sub, expected) in rows {
            assert_eq!(parse_subject(sub), expected, "{sub}");
        }
        let sa = ServiceAccount {
            namespace: "prod",
            name: "billing",
            uid: "u",
        };
        assert_eq!(sa.username(), "system:serviceaccount:prod:billing");
    }

    #[test]
    fn a_token_names_a_service_account_only_when_its_forms_agree() {
        let sa = |namespace, name, uid| {
            Some(ServiceAccount {
                namespace,
                name,
                uid,
            })
        };
        let sub = Some("system:serviceaccount:prod:billing");
        let rows = [
            ("sub alone", sub, [None, None], Some(("prod", "billing"))),
            ("no sub", None, [sa("prod", "billing", "u"), None], None),
            ("not a service account", Some("alice"), [None, None], None),
            (
                "bound agrees",
                sub,
                [sa("prod", "billing", "u"), None],
                Some(("prod", "billing")),
            ),
            (
                "legacy agrees",
                sub,
                [None, sa("prod", "billing", "u")],
                Some(("prod", "billing")),
            ),
            (
                "bound names another namespace",
                sub,
                [sa("dev", "billing", "u"), None],
                None,
            ),
            (
                "legacy names another account",
                sub,
                [None, sa("prod", "other", "u")],
                None,
            ),
            (
                "both forms agree",
                sub,
                [sa("prod", "billing", "u"), sa("prod", "billing", "u")],
                Some(("prod", "billing")),
            ),
            (
                "the forms disagree on the uid",
                sub,
                [sa("prod", "billing", "u1"), sa("prod", "billing", "u2")],
                None,
            ),
        ];
        for (name, sub, forms, expected) in rows {
            assert_eq!(named_service_account(sub, forms), expected, "{name}");
        }
    }
}
