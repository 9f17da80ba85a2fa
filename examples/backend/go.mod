module example.com/pake-backend

go 1.22
