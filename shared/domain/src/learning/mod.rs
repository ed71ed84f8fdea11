//! The learning loop's offline half: point-in-time training data from the event log ([`dataset`]), the
//! off-policy evaluation of candidate policies on it ([`targets`]), and the promotion rule
//! ([`promotion`]). Training itself (linfa) lives in `checkout-train`; the policy artifact and its serving
//! in [`crate::decision::learned`].

pub mod dataset;
pub mod explain;
pub mod promotion;
pub mod targets;
