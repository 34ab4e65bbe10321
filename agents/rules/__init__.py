"""Rule-based autoscalers as run in production (AWS, Kubernetes, Knative, forecasting)."""
