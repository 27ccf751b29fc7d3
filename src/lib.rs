#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod attachment;
#[cfg(feature = "axum")]
pub mod axum;
pub mod conversation;
pub mod engine;
pub mod ids;
pub mod policy;
pub mod secret;
pub mod send;
pub mod store;
mod time;
pub mod webhook;
