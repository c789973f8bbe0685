"""Statistics, reports and plots that turn trained runs into a comparison."""
