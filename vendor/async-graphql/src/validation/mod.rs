#[cfg(test)]
#[macro_use]
mod test_harness;

mod rules;
mod suggestion;
mod utils;
mod visitor;
mod visitors;

pub(crate) use utils::is_valid_input_value;
pub use visitor::VisitorContext;
use visitor::{VisitorNil, visit, visit_operation};

use crate::{
    CacheControl, Name, Positioned, ServerError, Variables,
    parser::types::{ExecutableDocument, OperationDefinition},
    registry::Registry,
};

/// The operation a request runs, with its name: the one whose complexity, depth and cache
/// control are measured.
pub(crate) type ChosenOperation<'a> = (Option<&'a Name>, &'a Positioned<OperationDefinition>);

/// Validation results.
#[derive(Debug, Copy, Clone)]
pub struct ValidationResult {
    /// Cache control
    pub cache_control: CacheControl,

    /// Query complexity
    pub complexity: usize,

    /// Query depth
    pub depth: usize,
}

/// Validation mode
#[derive(Copy, Clone, Debug)]
pub enum ValidationMode {
    /// Execute all validation rules.
    Strict,

    /// The executor itself also has error handling, so it can improve
    /// performance, but it can lose some error messages.
    Fast,
}

/// Runs the validation rules over the whole document (once per document when
/// `document_checked` says it has passed them), and measures the complexity, depth and
/// cache control of the `operation` the request runs, the other operations of the document
/// aside: they do not run, so their cost cannot refuse it. A request naming no operation
/// the document holds measures nothing and fails when the operation is looked up.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_rules<'a>(
    registry: &'a Registry,
    doc: &'a ExecutableDocument,
    variables: Option<&'a Variables>,
    operation_name: Option<&'a str>,
    operation: Option<ChosenOperation<'a>>,
    mode: ValidationMode,
    limit_complexity: Option<usize>,
    limit_depth: Option<usize>,
    document_checked: bool,
    measured: &mut Measured,
) -> Result<ValidationResult, Vec<ServerError>> {
    if let Measured::Before(result) = *measured {
        return within_limits(result, limit_complexity, limit_depth);
    }
    let mut cache_control = CacheControl::default();
    let mut complexity = 0;
    let mut depth = 0;

    let mut ctx = VisitorContext::new(registry, doc, variables, operation_name);
    let mut errors = match mode {
        ValidationMode::Strict => {
            // The specification's rules read the document alone, so a document that has
            // passed them once passes them again (`Request::set_document_checked`). They
            // run without the variables: a variable's value was coerced to its type before
            // validation, and `VariableInAllowedPosition` checks that type against each
            // place it is used.
            let mut document_ctx = VisitorContext::new(registry, doc, None, operation_name);
            if !document_checked {
                let mut visitor = VisitorNil
                    .with(rules::ArgumentsOfCorrectType::default())
                    .with(rules::DefaultValuesOfCorrectType)
                    .with(rules::FieldsOnCorrectType)
                    .with(rules::FragmentsOnCompositeTypes)
                    .with(rules::KnownArgumentNames::default())
                    .with(rules::NoFragmentCycles::default())
                    .with(rules::KnownFragmentNames)
                    .with(rules::KnownTypeNames)
                    .with(rules::NoUndefinedVariables::default())
                    .with(rules::NoUnusedFragments::default())
                    .with(rules::NoUnusedVariables::default())
                    .with(rules::UniqueArgumentNames::default())
                    .with(rules::UniqueVariableNames::default())
                    .with(rules::VariablesAreInputTypes)
                    .with(rules::VariableInAllowedPosition::default())
                    .with(rules::ScalarLeafs)
                    .with(rules::PossibleFragmentSpreads::default())
                    .with(rules::ProvidedNonNullArguments)
                    .with(rules::KnownDirectives::default())
                    .with(rules::DirectivesUnique)
                    .with(rules::OverlappingFieldsCanBeMerged)
                    .with(rules::UploadFile);
                visit(&mut visitor, &mut document_ctx, doc);
            }
            document_ctx.errors
        }
        ValidationMode::Fast => {
            let mut visitor = VisitorNil
                .with(rules::NoFragmentCycles::default())
                .with(rules::UploadFile);
            visit(&mut visitor, &mut ctx, doc);
            std::mem::take(&mut ctx.errors)
        }
    };
    if let Some(operation) = operation {
        let mut visitor = VisitorNil
            .with(visitors::CacheControlCalculate {
                cache_control: &mut cache_control,
            })
            .with(visitors::ComplexityCalculate::new(&mut complexity))
            .with(visitors::DepthCalculate::new(&mut depth));
        visit_operation(&mut visitor, &mut ctx, doc, operation);
    }
    errors.append(&mut ctx.errors);
    let variables_read = ctx.variables_read();

    // check limit
    let result = ValidationResult {
        cache_control,
        complexity,
        depth,
    };
    within_limits(result, limit_complexity, limit_depth)?;
    if !errors.is_empty() {
        return Err(errors.into_iter().map(Into::into).collect());
    }
    // Nothing measured stands for no operation: a request that names one the document
    // lacks fails later, and must not leave a measure for the others.
    if !variables_read && operation.is_some() {
        *measured = Measured::Now(result);
    }
    Ok(result)
}

/// What [`check_rules`] is given and tells of a document's complexity, depth and cache
/// control.
#[derive(Clone, Copy)]
pub(crate) enum Measured {
    /// Not measured before, or measured with the variables.
    Unknown,
    /// Measured by an earlier request, without reading its variables: the same for every
    /// request that sends the document.
    Before(ValidationResult),
    /// Measured by this request without reading its variables, so that later requests
    /// can take it as it is.
    Now(ValidationResult),
}

fn within_limits(
    result: ValidationResult,
    limit_complexity: Option<usize>,
    limit_depth: Option<usize>,
) -> Result<ValidationResult, Vec<ServerError>> {
    if let Some(limit_complexity) = limit_complexity
        && result.complexity > limit_complexity
    {
        return Err(vec![ServerError::new("Query is too complex.", None)]);
    }

    if let Some(limit_depth) = limit_depth
        && result.depth > limit_depth
    {
        return Err(vec![ServerError::new("Query is nested too deep.", None)]);
    }
    Ok(result)
}
