//! Client quotas (byte rates, request time, connection rate) and throttling.
