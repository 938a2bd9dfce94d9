"""Everything that talks to a CRM, behind one interface: the `Source` protocol in `base`."""
