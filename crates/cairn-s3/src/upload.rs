//! Multipart upload ids and part numbers as S3 spells them, for the
//! multipart operations and for UploadPartCopy.

use s3s::{S3Result, s3_error};
use uuid::Uuid;

/// Upload ids are the 32 hex digits of a UUID; anything else names no upload.
pub(crate) fn parse_upload_id(value: &str) -> S3Result<Uuid> {
    Uuid::try_parse(value).map_err(|_| {
        s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        )
    })
}

pub(crate) fn format_upload_id(id: Uuid) -> String {
    id.simple().to_string()
}

pub(crate) fn part_number(value: i32) -> S3Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|n| (1..=cairn_object::MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and {}, inclusive",
                cairn_object::MAX_PART_NUMBER
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_and_part_numbers() {
        let id = Uuid::now_v7();
        assert_eq!(parse_upload_id(&format_upload_id(id)).unwrap(), id);
        assert!(parse_upload_id("nonsense").is_err());
        assert_eq!(part_number(1).unwrap(), 1);
        assert_eq!(part_number(10_000).unwrap(), 10_000);
        assert!(part_number(0).is_err());
        assert!(part_number(10_001).is_err());
        assert!(part_number(-1).is_err());
    }
}
