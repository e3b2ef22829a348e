"""The equations of one athlete-day: Banister states, observation, noise, performance, hazard."""
