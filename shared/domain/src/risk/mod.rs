//! Fraud-resilient gating: the risk score's friction, chosen by expected cost.
//!
//! - [`friction`]: what each friction (allow, step-up, review, decline) costs on a genuine and on a
//!   fraudulent order, score bands, and the bands that minimise the cost on labelled orders.
//! - [`inputs`]: the model's inputs, from the risk profiles, the user's history and the payment.
//! - [`model`]: the risk model artifact (registry and compiled-in fallback), its score, reason codes and
//!   band.

pub mod friction;
pub mod inputs;
pub mod model;

/// The risk signals are a projection of the event log: see [`crate::features::risk`].
pub use crate::features::risk::signals;

pub use friction::{Band, Bands, Friction, FrictionCosts, Labelled, Order, PolicyCost};
