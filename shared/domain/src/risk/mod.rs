//! Fraud-resilient gating: the risk score's friction, chosen by expected cost.
//!
//! - [`friction`]: what each friction (allow, step-up, review, decline) costs on a genuine and on a
//!   fraudulent order, score bands, and the bands that minimise the cost on labelled orders.
//! - [`inputs`]: the model's inputs, from the risk profiles, the user's history and the payment.
//! - [`model`]: the risk model artifact (registry and compiled-in fallback), its score, reason codes and
//!   band.
//! - [`review`]: the manual-review queue: cases as folds of their events, reviewers' commands, the SLA
//!   (in `features`, with the other folds of the log).

pub mod friction;
pub mod inputs;
pub mod model;
pub mod queue;

/// Review cases are folds of the event log too: see [`crate::features::review`].
pub use crate::features::review;
/// The risk signals are a projection of the event log: see [`crate::features::risk`].
pub use crate::features::risk::signals;

pub use friction::{Band, Bands, Friction, FrictionCosts, Labelled, Order, PolicyCost};
