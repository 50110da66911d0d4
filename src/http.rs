//! The daemon's HTTP front: the routes ([`router`]) and the layers around them ([`middleware`]),
//! the one error type every handler answers with ([`errors`]), the state they share
//! ([`state`]), and the admin API ([`admin`], with the dashboard's login routes). The serving
//! handlers themselves are in `proxy` and `translate`; `server` binds and runs all of it.

pub mod admin;
pub mod errors;
pub mod middleware;
pub mod router;
pub mod state;
