//! SASL mechanisms (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) and SCRAM credentials.
