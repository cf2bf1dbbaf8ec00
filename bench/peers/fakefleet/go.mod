module fakefleet

go 1.19
