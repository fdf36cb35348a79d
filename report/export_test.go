package report

// Golden is golden for the external tests (package report_test).
var Golden = golden
