"""The ServiceLB operator: a load balancer per ServiceLB, through the provider."""
