# ebayesthresh_cases.R — R reference cases for the hard spots of the Python EbayesThresh port.
#
# What it writes
#   One JSON file in the schema of tests/data/ebayesthresh/cases.json (see that folder's README):
#   {"meta": {...}, "cases": [...]}, every case a call of R's `ebayesthresh(..., verbose = TRUE)`
#   with its arguments and R's result. The cases are the regression cases of
#   tests/data/ebayesthresh/regression_cases.json: data near zero with the quasi-Cauchy prior and
#   the posterior mean (threshrule = "mean"), where R's
#       postmean.cauchy = w (x - 2 (1 - e)/x) / (w (1 - e) + (1 - w) e x^2),  e = exp(-x^2/2),
#   is dominated by rounding (for |x| ~ 1e-4 the numerator cancels to about x^3/4, far below the
#   rounding error of 2 (1 - e)/x). A port matches R there only if it performs R's operations on
#   the same doubles with the same exp().
#
#   Families of x (each drawn with set.seed, then rounded as R's round() does):
#     zeroish_n100   n = 100,  N(0, (1e-4)^2), rounded to 10 decimals (the held-out family)
#     zeroish_n1000  n = 1000, N(0, (1e-4)^2), rounded to 10 decimals
#     tiny_n100      n = 100,  N(0, (1e-6)^2), rounded to 12 decimals
#   Grid for every draw: prior "cauchy", threshrule "mean", bayesfac FALSE,
#     a in {0.5, NA, 1} x sdev in {1, NA} x universalthresh in {TRUE, FALSE}  (12 cases).
#
# How to run
#   Rscript data_scripts/ebayesthresh_cases.R OUT.json [DRAWS] [SEED]
#     DRAWS: draws per family (default 2); SEED: first seed (default 20240601; draw k of family f
#     uses SEED + 1000 f + k, so the file is the same on every run except meta.generated_utc).
#   Then compress it next to the other cases:
#     xz -9e -c OUT.json > tests/data/ebayesthresh/regression_cases.json.xz
#   Needs R (e.g. Debian `r-base-core`) and the EbayesThresh package (`library(EbayesThresh)`,
#   CRAN 1.4-12). Without the package installed, set EBAYESTHRESH_R_DIR to a folder holding the
#   package's R/*.R files (e.g. R/ of github.com/stephenslab/EbayesThresh at the release's commit);
#   they are sourced, and EBAYESTHRESH_R_LABEL (optional) says in meta.source where they came from.
#
# Numbers are written with sprintf("%.17g"), which Python's json.load reads back as exactly R's
# double. Never feed decimal strings back into R to reproduce a case: R's own parser is not
# correctly rounded (as.numeric("0.281139") is one ulp above the nearest double), use hex ("%a").

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) stop("usage: Rscript ebayesthresh_cases.R OUT.json [DRAWS] [SEED]")
out_path <- args[1]
n_draws <- if (length(args) >= 2) as.integer(args[2]) else 2L
seed0 <- if (length(args) >= 3) as.integer(args[3]) else 20240601L

# ---- the package under test ----------------------------------------------------------------------
source_dir <- Sys.getenv("EBAYESTHRESH_R_DIR")
if (nzchar(source_dir)) {
  for (f in sort(list.files(source_dir, pattern = "[.]R$", full.names = TRUE))) source(f)
  pkg_version <- NA_character_
  pkg_source <- paste0("R files sourced from ", normalizePath(source_dir),
                       if (nzchar(Sys.getenv("EBAYESTHRESH_R_LABEL"))) paste0(" (", Sys.getenv("EBAYESTHRESH_R_LABEL"), ")"))
} else {
  suppressPackageStartupMessages(library(EbayesThresh))
  pkg_version <- as.character(packageVersion("EbayesThresh"))
  pkg_source <- "library(EbayesThresh)"
}

# ---- a small JSON writer (jsonlite is not needed) ------------------------------------------------
json_num <- function(v) {
  if (is.na(v) && !is.nan(v)) return("null")
  if (is.nan(v)) return("\"NaN\"")
  if (is.infinite(v)) return(if (v > 0) "\"Inf\"" else "\"-Inf\"")
  sprintf("%.17g", v)
}
json_str <- function(s) {
  s <- gsub("\\\\", "\\\\\\\\", s)
  s <- gsub("\"", "\\\\\"", s)
  paste0("\"", s, "\"")
}
# value: a scalar becomes a JSON scalar unless as_array; NULL, lists and vectors as expected
to_json <- function(v, as_array = FALSE) {
  if (is.null(v)) return("null")
  if (is.list(v)) {
    keys <- names(v)
    parts <- vapply(seq_along(v), function(i) {
      paste0(json_str(keys[i]), ": ", to_json(v[[i]], attr(v, "arrays")[i] %in% TRUE))
    }, "")
    return(paste0("{", paste(parts, collapse = ", "), "}"))
  }
  if (is.logical(v) && !all(is.na(v))) {
    items <- ifelse(v, "true", "false")
  } else if (is.character(v)) {
    items <- ifelse(is.na(v), "null", vapply(v, json_str, ""))
  } else {
    items <- vapply(as.numeric(v), json_num, "")
  }
  if (length(items) == 1 && !as_array) return(items)
  paste0("[", paste(items, collapse = ", "), "]")
}
# a named list whose listed fields are always written as arrays
obj <- function(..., arrays = character()) {
  v <- list(...)
  v <- v[!vapply(v, is.null, TRUE)]
  attr(v, "arrays") <- names(v) %in% arrays
  v
}

# ---- the families and the grid -------------------------------------------------------------------
families <- list(
  list(name = "zeroish_n100", n = 100, sd = 1e-4, digits = 10,
       description = "all zero-ish: N(0, 1e-4^2) values rounded to 10 decimals"),
  list(name = "zeroish_n1000", n = 1000, sd = 1e-4, digits = 10,
       description = "all zero-ish: N(0, 1e-4^2) values rounded to 10 decimals"),
  list(name = "tiny_n100", n = 100, sd = 1e-6, digits = 12,
       description = "tiny: N(0, 1e-6^2) values rounded to 12 decimals")
)
grid <- expand.grid(univ = c(TRUE, FALSE), sdev = c(1, NA), a = c(0.5, NA, 1),
                    KEEP.OUT.ATTRS = FALSE)
fmt_arg <- function(v) if (is.na(v)) "NA" else format(v)

cases <- character()
for (fi in seq_along(families)) {
  fam <- families[[fi]]
  for (k in seq_len(n_draws)) {
    set.seed(seed0 + 1000L * fi + k)
    x <- round(rnorm(fam$n, 0, fam$sd), fam$digits)
    for (g in seq_len(nrow(grid))) {
      a <- grid$a[g]; sdev <- grid$sdev[g]; univ <- grid$univ[g]
      id <- sprintf("ebayesthresh/%s#%d/cauchy/a=%s/mean/bf=F/sdev=%s/univ=%s", fam$name, k,
                    fmt_arg(a), fmt_arg(sdev), if (univ) "T" else "F")
      warns <- character()
      r <- withCallingHandlers(
        tryCatch(
          ebayesthresh(x, prior = "cauchy", a = a, bayesfac = FALSE, sdev = sdev, verbose = TRUE,
                       threshrule = "mean", universalthresh = univ),
          error = function(e) e),
        warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") })
      fargs <- obj(x = x, prior = "cauchy", a = a, bayesfac = FALSE, sdev = sdev, verbose = TRUE,
                   threshrule = "mean", universalthresh = univ, arrays = "x")
      case <- obj(id = id, `function` = "ebayesthresh", split = "regression", x_draw = k,
                  x_family = fam$name, x_description = fam$description, args = fargs)
      if (inherits(r, "error")) {
        case$error <- conditionMessage(r)
      } else {
        case$result <- do.call(obj, c(r, list(arrays = c("muhat", "x"))))
      }
      if (length(warns)) case$warnings <- warns
      attr(case, "arrays") <- c(names(case) %in% "warnings")
      cases <- c(cases, to_json(case))
    }
  }
}

meta <- obj(
  package = "EbayesThresh", package_version = pkg_version, source = pkg_source,
  r_version = R.version.string, platform = R.version$platform,
  generated_utc = format(Sys.time(), "%Y-%m-%d %H:%M:%S UTC", tz = "UTC"),
  split = "regression", n_cases = length(cases), schema_version = 1,
  generator = "data_scripts/ebayesthresh_cases.R",
  tolerance_suggestion = obj(rtol = 1e-6, atol = 1e-8)
)
con <- file(out_path, "w")
writeLines(c("{", paste0("\"meta\": ", to_json(meta), ","), "\"cases\": ["), con)
writeLines(paste0(cases, c(rep(",", length(cases) - 1), "")), con)
writeLines(c("]", "}"), con)
close(con)
cat(sprintf("wrote %d cases to %s\n", length(cases), out_path))
