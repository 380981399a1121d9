//! Panic payloads of user code: their message, and dropping them safely.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// The message of a panic payload (`&str` or `String`, as `panic!` makes), and
/// the payload dropped: its own `Drop` is user code, so a panic there is
/// caught too.
pub(crate) fn take_message(payload: Box<dyn Any + Send>) -> String {
    let message = if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    };
    drop_payload(payload);
    message
}

/// Drops a panic payload, catching a panic in its `Drop`.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        // A payload whose drop panics with a payload whose drop panics: leak
        // it rather than unwind out of the supervisor.
        std::mem::forget(again);
    }
}
