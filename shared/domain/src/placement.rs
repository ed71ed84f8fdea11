//! Where in the storefront a decision is asked for. Both decisions and experiments (which target
//! placements) build on it, so it sits below both.

use serde::Serialize;

/// The storefront placement a decision request names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    Cart,
    Checkout,
    PostPurchase,
    /// An abandoned cart's recovery message, decided by the recovery sweep (never asked for over the
    /// decision API).
    Recovery,
}

impl Placement {
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Cart => "cart",
            Placement::Checkout => "checkout",
            Placement::PostPurchase => "post_purchase",
            Placement::Recovery => "recovery",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cart" => Placement::Cart,
            "checkout" => Placement::Checkout,
            "post_purchase" => Placement::PostPurchase,
            "recovery" => Placement::Recovery,
            _ => return None,
        })
    }
}
