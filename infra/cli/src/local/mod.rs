//! The local stack, as the CLI, the demo and the integration tests drive it: the description that
//! `infra/localstack.py` writes ([`stack`]) and the event-source-mapping drivers that stand in for
//! Lambda's pollers, which moto does not run ([`esm`]). None of this is deployed.

pub mod esm;
pub mod stack;
