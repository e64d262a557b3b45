//! [`ReviewSource`]: why a token could not be reviewed, as [`VerifyError::ReviewUnavailable`]
//! carries it (the reviewer's own error type lives in the crate that sends the reviews).
//!
//! [`VerifyError::ReviewUnavailable`]: super::VerifyError::ReviewUnavailable

use std::any::TypeId;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Why a review could not be done: the reviewer's error (for Kubernetes TokenReview,
/// `oidc_bearer_kubernetes::ReviewError`), read with [`downcast_ref`](Self::downcast_ref).
///
/// Whatever it holds, a [`ReviewUnavailable`](super::VerifyError::ReviewUnavailable) is a refusal
/// to answer (503), never an acceptance; code that grants anything on a particular kind (a grace
/// period) must find that kind by downcast, and treat an error it cannot read as no grant.
#[derive(Clone)]
pub struct ReviewSource {
    error: Arc<dyn Error + Send + Sync + 'static>,
    /// The error's type: errors of two types never compare equal, whatever they print.
    type_id: TypeId,
}

impl ReviewSource {
    /// Wraps the reviewer's error.
    pub fn new<E: Error + Send + Sync + 'static>(error: E) -> Self {
        Self {
            error: Arc::new(error),
            type_id: TypeId::of::<E>(),
        }
    }

    /// The reviewer's error, if it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error.downcast_ref()
    }

    /// The reviewer's error.
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.error
    }
}

impl fmt::Debug for ReviewSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.error, f)
    }
}

impl fmt::Display for ReviewSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.error, f)
    }
}

/// The same error, or errors of the same type that print the same (`Debug`), as
/// [`VerifyError`](super::VerifyError)'s equality needs.
impl PartialEq for ReviewSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.error, &other.error)
            || (self.type_id == other.type_id && format!("{self:?}") == format!("{other:?}"))
    }
}
