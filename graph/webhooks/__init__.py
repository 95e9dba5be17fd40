"""Webhooks on the network side: URL safety, signing and sending, the delivery loop, and the
``partner-hub webhooks listen`` receiver."""
