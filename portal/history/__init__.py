"""Historical push: back-fill a connection's records from before its connection date."""
