"""What a check leaves behind for people and CI: summary rows, drift, JUnit properties, suggestions, failure
artifacts."""
