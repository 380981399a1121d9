//! OTP's `supervisor_SUITE` scenarios for the control of one service, temporary
//! and significant (critical) children, and shutdown order, ported as
//! behaviour (not code) to this supervisor. Filled in by the issue-9 work.
