//! Decisions: the request contract (and, as the scorer grows, assignment, policy and the response).

pub mod policy;
pub mod request;
