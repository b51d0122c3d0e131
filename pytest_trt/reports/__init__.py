"""What a check leaves behind for people and CI: summary rows, JUnit properties, suggestions, failure artifacts."""
