//! Runner (see the scenario work).
