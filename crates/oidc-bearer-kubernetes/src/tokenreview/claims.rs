//! [`TokenReviewClaims`]: the user a TokenReview names, with the bound pod, node and credential
//! read from its `extra`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use oidc_bearer::claims::kubernetes::ServiceAccount;
use oidc_bearer::policy::PolicyClaims;

/// `extra` key: the name of the pod the token is bound to.
const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// `extra` key: the uid of the pod the token is bound to.
const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// `extra` key: the node the pod runs on (Kubernetes 1.30+).
const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
/// `extra` key: the uid of that node (Kubernetes 1.30+).
const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
/// `extra` key: the token's credential id, `JTI=<jti>` (Kubernetes 1.30+).
const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// Who the Kubernetes API server says a token belongs to: `status.user` of a TokenReview, and the
/// audiences it was found valid for (`status.audiences`).
///
/// It implements [`PolicyClaims`](oidc_bearer::policy::PolicyClaims), reading the service account from the user name as
/// [`KubernetesClaims`](oidc_bearer::claims::kubernetes::KubernetesClaims) does, so the same policies
/// ([`policy::namespaces`](oidc_bearer::policy::namespaces), `service_accounts`, `subjects`) work with
/// either verifier.
///
/// ```
/// use oidc_bearer_kubernetes::TokenReviewClaims;
///
/// let claims: TokenReviewClaims = serde_json::from_value(serde_json::json!({
///     "username": "system:serviceaccount:prod:billing",
///     "uid": "0b2f6c2e-8f4e-4a0e-9f1c-1c3a3f6f5d10",
///     "groups": ["system:serviceaccounts", "system:serviceaccounts:prod", "system:authenticated"],
///     "extra": {"authentication.kubernetes.io/pod-name": ["billing-7d4b9c8f6-x2k9q"]},
/// })).unwrap();
/// let sa = claims.service_account().unwrap();
/// assert_eq!((sa.namespace, sa.name), ("prod", "billing"));
/// assert_eq!(claims.pod_name(), Some("billing-7d4b9c8f6-x2k9q"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenReviewClaims {
    /// The user name: `system:serviceaccount:<namespace>:<name>` for a service account.
    pub username: String,
    /// The user's uid (a service account's uid), if the API server sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The user's groups (`system:serviceaccounts`, `system:serviceaccounts:<namespace>`,
    /// `system:authenticated`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra attributes: the bound pod's name and uid, the node's, the credential id (read them with
    /// [`pod_name`](Self::pod_name) and its siblings), under keys such as
    /// `authentication.kubernetes.io/pod-name`.
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
    /// The audiences the API server found the token valid for (a subset of those asked for).
    #[serde(default)]
    pub audiences: Vec<String>,
}

impl TokenReviewClaims {
    /// The service account, parsed from `system:serviceaccount:<namespace>:<name>` with the user's
    /// uid (empty if the API server sent none); `None` for any other user.
    pub fn service_account(&self) -> Option<ServiceAccount<'_>> {
        ServiceAccount::from_username(&self.username, self.uid.as_deref().unwrap_or(""))
    }

    /// The first value of an `extra` attribute.
    fn extra_value(&self, key: &str) -> Option<&str> {
        self.extra.get(key)?.first().map(String::as_str)
    }

    /// The name of the pod the token is bound to.
    pub fn pod_name(&self) -> Option<&str> {
        self.extra_value(EXTRA_POD_NAME)
    }

    /// The uid of the pod the token is bound to.
    pub fn pod_uid(&self) -> Option<&str> {
        self.extra_value(EXTRA_POD_UID)
    }

    /// The node the bound pod runs on.
    pub fn node_name(&self) -> Option<&str> {
        self.extra_value(EXTRA_NODE_NAME)
    }

    /// The uid of the node the bound pod runs on.
    pub fn node_uid(&self) -> Option<&str> {
        self.extra_value(EXTRA_NODE_UID)
    }

    /// The token's credential id (`JTI=<jti>`).
    pub fn credential_id(&self) -> Option<&str> {
        self.extra_value(EXTRA_CREDENTIAL_ID)
    }

    /// Roughly the bytes these claims hold, for the answer cache's byte bound.
    pub(crate) fn weight(&self) -> usize {
        let strings = |v: &[String]| v.iter().map(|s| s.len() + 24).sum::<usize>();
        self.username.len()
            + self.uid.as_ref().map_or(0, String::len)
            + strings(&self.groups)
            + strings(&self.audiences)
            + self
                .extra
                .iter()
                .map(|(k, v)| k.len() + 64 + strings(v))
                .sum::<usize>()
    }
}

impl PolicyClaims for TokenReviewClaims {
    /// `None`: a TokenReview answer names no issuer (the cluster asked is the one that vouches), so
    /// issuer-scoped policies refuse these claims.
    fn issuer(&self) -> Option<&str> {
        None
    }

    fn subject(&self) -> Option<&str> {
        Some(&self.username)
    }

    /// A TokenReview answer carries no scopes.
    fn scopes(&self) -> Vec<&str> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A TokenReview answer's service account, as the policies read it: from the user name only.
    #[test]
    fn token_review_claims_name_their_service_account_to_policies() {
        let claims: TokenReviewClaims = serde_json::from_value(serde_json::json!({
            "username": "system:serviceaccount:prod:billing",
            "uid": "sa-uid",
        }))
        .unwrap();
        assert_eq!(
            claims.kubernetes_service_account(),
            Some(("prod", "billing"))
        );
        for username in ["alice", "system:node:n1", "system:serviceaccount:prod:a:b"] {
            let claims: TokenReviewClaims =
                serde_json::from_value(serde_json::json!({ "username": username })).unwrap();
            assert!(claims.kubernetes_service_account().is_none(), "{username}");
            assert_eq!(PolicyClaims::subject(&claims), Some(username));
        }
    }

    #[test]
    fn service_account_and_bound_objects_are_read() {
        let claims: TokenReviewClaims = serde_json::from_value(json!({
            "username": "system:serviceaccount:prod:billing",
            "uid": "sa-uid",
            "groups": ["system:serviceaccounts"],
            "extra": {
                EXTRA_POD_NAME: ["p"], EXTRA_POD_UID: ["pu"], EXTRA_NODE_NAME: ["n"],
                EXTRA_NODE_UID: ["nu"], EXTRA_CREDENTIAL_ID: ["JTI=j"],
            },
        }))
        .unwrap();
        let sa = claims.service_account().unwrap();
        assert_eq!(
            (sa.namespace, sa.name, sa.uid),
            ("prod", "billing", "sa-uid")
        );
        assert_eq!(
            format!("system:serviceaccount:{}:{}", sa.namespace, sa.name),
            claims.username
        );
        assert_eq!(
            [
                claims.pod_name(),
                claims.pod_uid(),
                claims.node_name(),
                claims.node_uid()
            ],
            [Some("p"), Some("pu"), Some("n"), Some("nu")]
        );
        assert_eq!(claims.credential_id(), Some("JTI=j"));
    }

    #[test]
    fn other_users_name_no_service_account() {
        for username in ["alice", "system:node:n1", "system:serviceaccount:prod:a:b"] {
            let claims: TokenReviewClaims =
                serde_json::from_value(json!({ "username": username })).unwrap();
            assert!(claims.service_account().is_none(), "{username}");
        }
    }
}
